"""The README's quick start is what CI runs, and the CLI it documents exists."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _quick_start_commands()
    assert len(commands) == 2
    install_and_launch, install_and_test = commands
    assert "pip install" in install_and_launch and install_and_launch.endswith("cnn-explorer")
    assert "pip install" in install_and_test and "pytest" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install_and_test in ci  # verbatim, as its own line


def test_version_command():
    out = subprocess.run(
        [sys.executable, "-m", "cnn_explorer", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    from cnn_explorer import __version__

    assert out.stdout.strip() == f"cnn-explorer {__version__}"


def test_every_picture_the_readme_shows_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert pictures, "the README should show the pages"
    for picture in pictures:
        assert (ROOT / picture).is_file(), picture
