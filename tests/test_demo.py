"""The demo does real work on a real data set and validates its own report."""

import subprocess
import sys

from wfkit.app.demo import run_demo


async def test_demo_report_is_validated_against_the_data():
    result = await run_demo(2007, progress=False)
    assert result["status"] == "completed", result
    assert result["task_results"]["validate"]["result"] == {"valid": True, "figures_checked": 5}
    report = result["task_results"]["report"]["result"]
    assert "Oceania: 81.06 years over 2 countries" in report
    # a different year changes the numbers
    other = await run_demo(1952, progress=False)
    assert "Oceania: 69.17 years" in other["task_results"]["report"]["result"]


def test_wfkit_demo_command():
    out = subprocess.run([sys.executable, "-m", "wfkit", "demo", "--no-report"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "gapminder_report: completed, 8/8 tasks" in out.stdout
