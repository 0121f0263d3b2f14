"""Where the tests find the repository and the shared fixtures, wherever a test file sits under tests/."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
