"""``LiveFigure``: a Plotly ``FigureWidget`` whose JavaScript is not saved with the notebook.

Plotly's ``FigureWidget`` is an anywidget: its ~5 MB of JavaScript (plotly.js and the widget)
is its ``_esm`` trait, part of the widget's state. Headless runs (papermill, ``nbconvert
--execute``) save every widget's last state into the notebook, so each figure of a dashboard
added 5 MB to a saved notebook that could not even draw it without a kernel.

A ``LiveFigure`` opens with Plotly's module (plus one line that keeps it on the page, see
:data:`KEY`) and, unless a notebook UI is known to show it (:func:`run_by_notebook_ui`), at
once replaces its ``_esm`` with a small loader, so the state a headless run saves holds the
loader only; made with ``module=False`` next to a figure that carries the module, it opens
with the loader straight away. A browser that shows such a figure takes Plotly's module from the page when it
is there, or asks the kernel for it once with a custom message, which no saved state
records. Without a kernel the loader says so: the dashboard's saved output carries a static
picture of the final state instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import plotly
import plotly.graph_objects as go

__all__ = ["LiveFigure", "KEY", "run_by_notebook_ui"]

#: The page-wide slot (``globalThis[Symbol.for(KEY)]``) that holds Plotly's widget module.
KEY = f"wfkit.plotly-widget/{plotly.__version__}"
_ASK = "wfkit-plotly-module"
_HELLO = "wfkit-frontend"

_LOADER = """\
const KEY = Symbol.for(%(key)s);
const ASK = %(ask)s;
const HELLO = %(hello)s;

function slot() {
  const g = globalThis;
  if (!g[KEY]) {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    g[KEY] = { promise, resolve, value: null, asked: false };
  }
  return g[KEY];
}

// Plotly's widget module: already on the page, still being imported (the first state of this
// widget carried it), or asked of the kernel once.
function plotlyModule(model) {
  const s = slot();
  if (s.value) return Promise.resolve(s.value);
  setTimeout(() => {
    if (s.value || s.asked) return;
    s.asked = true;
    const onMsg = (msg, buffers) => {
      if (!msg || msg.type !== ASK || !buffers || !buffers.length) return;
      model.off("msg:custom", onMsg);
      const url = URL.createObjectURL(new Blob([buffers[0]], { type: "text/javascript" }));
      import(url).finally(() => URL.revokeObjectURL(url));  // it fills the slot itself
    };
    model.on("msg:custom", onMsg);
    model.send({ type: ASK });
  }, 1500);
  return s.promise;
}

export default () => {
  let widget = null;
  let ready = null;
  return {
    initialize({ model }) {
      model.send({ type: HELLO });  // a browser shows this figure (headless runs never say so)
      ready = plotlyModule(model).then((factory) => {
        widget = factory();
        return widget.initialize({ model });
      });
    },
    async render({ model, el }) {
      const note = document.createElement("div");
      note.className = "wfkit-live-figure-loading";
      note.style.cssText = "color:#666;font-size:12px;padding:8px";
      note.textContent = "loading Plotly…";
      el.appendChild(note);
      const late = setTimeout(() => {
        note.textContent = "This live figure needs the notebook's running kernel; the " +
          "saved output shows the final state as a picture.";
      }, 10000);
      await ready;
      clearTimeout(late);
      note.remove();
      return widget.render({ model, el });
    },
  };
};
"""

def run_by_notebook_ui() -> bool:
    """True when the code running now was sent from a notebook UI that shows widgets.

    JupyterLab, Notebook 7 and VS Code tag each execute request with the cell's id
    (``metadata.cellId``); papermill, ``nbconvert --execute`` and plain kernel clients do not.
    """
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    try:
        parent = kernel.get_parent("shell") if kernel is not None else None
    except Exception:  # noqa: BLE001 - an older or foreign kernel: no telling
        return False
    metadata = (parent or {}).get("metadata") or {}
    return bool(metadata.get("cellId"))


_EXPORT = re.compile(r"export\s*\{([^}]*)\}\s*;?\s*(?:/\*.*?\*/\s*)*\Z", re.S)


@functools.cache
def _modules() -> tuple[str, str] | None:
    """(Plotly's module with the line that keeps it on the page, the loader), or None when
    this Plotly's bundle is not the shape expected (then figures stay plain FigureWidgets)."""
    try:
        text = str(go.FigureWidget._esm)  # anywidget's FileContents: the file's text
    except Exception:  # noqa: BLE001 - any surprise: no loader, plain FigureWidgets
        return None
    m = _EXPORT.search(text)
    names = dict(
        (part.split(" as ")[1].strip(), part.split(" as ")[0].strip())
        for part in (m.group(1).split(",") if m else ()) if " as " in part
    )
    default = names.get("default")
    if not default or not re.fullmatch(r"[\w$]+", default):
        return None
    key = repr(KEY).replace("'", '"')
    keep = (
        f"\n;{{const k=Symbol.for({key}),g=globalThis;let s=g[k];if(!s){{let r;const p=new "
        f"Promise(x=>{{r=x}});s=g[k]={{promise:p,resolve:r,value:null,asked:false}}}}"
        f"if(!s.value){{s.value={default};s.resolve({default})}}}}\n"
    )
    loader = _LOADER % {"key": key, "ask": f'"{_ASK}"', "hello": f'"{_HELLO}"'}
    return text + keep, loader


class LiveFigure(go.FigureWidget):
    """A ``FigureWidget`` for live views: the same figure and updates, but its state (what a
    saved notebook keeps) holds a small loader instead of Plotly's JavaScript."""

    @property  # read by AnyWidget.__init__: the module the widget opens with
    def _esm(self) -> str:
        modules = _modules()
        if modules is None:
            return str(go.FigureWidget._esm)
        return modules[0] if self.__dict__.get("_opens_with_module", True) else modules[1]

    def __init__(self, *args: Any, loader: bool = True, module: bool = True,
                 **kwargs: Any) -> None:
        """``loader=False`` keeps Plotly's module in the state (a browser is known to show
        the figure: swapping the module under a view would redraw it for nothing).
        ``module=False`` (with the loader) opens with the loader at once: a figure made just
        before puts the module on the page (a dashboard's second figure), so the kernel
        does not serialise and send Plotly's 5 MB once more."""
        self.__dict__["_opens_with_module"] = module or not loader
        super().__init__(*args, **kwargs)
        modules = _modules()
        # without the loader there is no telling: a browser is assumed
        self._frontend_seen = modules is None
        self._on_seen: list[Callable[[], None]] = []
        if modules is not None and loader:
            self.set_trait("_esm", modules[1])
        self.on_msg(self._on_custom)

    # -- one widget message per Plotly edit ------------------------------------------------
    #
    # Plotly's FigureWidget sends an edit (restyle, relayout, update) as four widget messages:
    # each edit id it bumps, the edit, and the edit reset to None. In a kernel each message
    # costs a serialisation and a wake-up of the output thread, which made sending most of a
    # live dashboard's redraw. A LiveFigure sends the ids with the edit, in one message, and
    # not the reset: Plotly's frontend reads the ids off the model when the edit arrives
    # (all of one message's values are set before any change is handled), ignores a None
    # edit, and tells two edits apart by their ids, so it needs no reset between them.

    _ONE_MESSAGE_EDITS = frozenset({"_py2js_restyle", "_py2js_relayout", "_py2js_update"})
    _EDIT_IDS = ("_last_layout_edit_id", "_last_trace_edit_id")
    _bundling = False

    def _should_send_property(self, key: str, value: Any) -> bool:
        if self._bundling and not self._holding_sync:
            if key in self._EDIT_IDS:
                return False  # goes with the edit
            if key in self._ONE_MESSAGE_EDITS:
                if value is not None:
                    self.send_state([*self._EDIT_IDS, key])
                return False
        return bool(super()._should_send_property(key, value))

    def _one_message(self, send: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._bundling = True
        try:
            send(*args, **kwargs)
        finally:
            self._bundling = False

    def _send_restyle_msg(self, *args: Any, **kwargs: Any) -> None:
        self._one_message(super()._send_restyle_msg, *args, **kwargs)

    def _send_relayout_msg(self, *args: Any, **kwargs: Any) -> None:
        self._one_message(super()._send_relayout_msg, *args, **kwargs)

    def _send_update_msg(self, *args: Any, **kwargs: Any) -> None:
        self._one_message(super()._send_update_msg, *args, **kwargs)

    @property
    def frontend_seen(self) -> bool:
        """True once a browser has made this figure's model (a headless run never does)."""
        return self._frontend_seen

    def on_frontend(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when a browser first shows this figure."""
        self._on_seen.append(callback)

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == _HELLO and not self._frontend_seen:
            self._frontend_seen = True
            for callback in self._on_seen:
                callback()
        elif kind == _ASK:
            modules = _modules()
            if modules is not None:
                self.send({"type": _ASK}, buffers=[modules[0].encode("utf-8")])
