"""wfkit.tracebacks: the user's innermost frame, from a live exception or a traceback's text."""

from __future__ import annotations

from wfkit.tracebacks import user_frame

SOURCELESS = """\
Traceback (most recent call last):
  File "/srv/app/wfkit_site/engine.py", line 208, in _attempt
    result = await self._call(task, fn, ctx, agent)
  File "<stdin>", line 8, in b
ValueError: x
"""

WITH_SOURCE = """\
Traceback (most recent call last):
  File "/home/me/flows/tasks.py", line 12, in clean
    return df["revenu"].sum()
           ~~^^^^^^^^^^
KeyError: 'revenu'
"""


def test_a_frame_without_source_has_no_code_line():
    frame = user_frame(SOURCELESS)
    assert (frame.filename, frame.lineno, frame.name) == ("<stdin>", 8, "b")
    assert frame.line == ""  # not the exception's own line
    assert str(frame) == "<stdin>:8 in b"


def test_the_code_line_is_the_one_indented_under_the_frame():
    frame = user_frame(WITH_SOURCE)
    assert frame.line == 'return df["revenu"].sum()'
    assert str(frame) == '/home/me/flows/tasks.py:12 in clean: return df["revenu"].sum()'
