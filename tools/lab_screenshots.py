"""Check a course notebook for real in JupyterLab: run it in headless Chromium and take screenshots.

Starts ``jupyter lab`` (from the same Python environment) on the notebook's folder with a random
token on a free local port, opens the notebook in headless Chromium (via Playwright, using the
system Chromium: no browser download), runs all cells (JupyterLab command ``notebook:run-all-cells``),
waits until every code cell has run and the kernel is idle, then scrolls to

* the first plotly 3D view (a ``application/vnd.plotly.v1+json`` output with a WebGL scene) and
* the first cell showing ipywidgets (``application/vnd.jupyter.widget-view+json`` outputs: the
  controls and what they drive),

and saves ``<prefix>3d_view.png``, ``<prefix>widget.png`` (element screenshots of those) and
``<prefix>overview.png`` (the whole window) into ``--out``. Then it moves the widget's slider one
step and checks that the kernel re-renders the widget's output (comms work both ways). The browser
console is written to ``--console-log`` (default: only its errors are printed). The server is
always shut down, even on errors.

The notebook file is never saved: autosave is switched off in a throw-away settings folder (the
file is checked to be byte-identical afterwards); the checkpoint JupyterLab makes on open is removed.

Usage (from the repository root)::

    .venv/bin/python tools/lab_screenshots.py notebooks/00_introduction.ipynb --out docs/screenshots --fast

Needs ``pip install playwright`` (the Python package only) and a Chromium binary
(Debian: ``apt-get install chromium``; or pass ``--chromium PATH`` / set ``CHROMIUM``).
Exit status: 0 all screenshots taken; 1 a check failed (cell error, nothing rendered, ...);
2 a prerequisite is missing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
MAX_PNG_BYTES = 300_000

# JupyterLab user settings for the run: no autosave (the notebook on disk stays untouched), every
# cell in the DOM (no windowing, so outputs far down can be found), no news/update pop-ups.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


class CheckFailed(RuntimeError):
    """The notebook did not run or render as it should in JupyterLab."""


class Missing(RuntimeError):
    """A prerequisite (playwright, chromium, jupyter lab) is missing."""


def find_chromium(explicit: str | None = None) -> str:
    """Path of a Chromium binary: ``explicit``, ``$CHROMIUM``, or the first on PATH; else Missing."""
    for cand in [explicit, os.environ.get("CHROMIUM")] + list(CHROMIUM_CANDIDATES):
        if not cand:
            continue
        path = cand if os.path.sep in cand else shutil.which(cand)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        if cand == explicit:
            raise Missing(f"--chromium {explicit!r} is not an executable file")
    raise Missing("no Chromium found (looked for $CHROMIUM, " + ", ".join(CHROMIUM_CANDIDATES) + "). "
                  "Install it (Debian/Ubuntu: `sudo apt-get install chromium`) or pass --chromium PATH.")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_lab_settings(settings_dir: Path) -> None:
    """Write :data:`LAB_SETTINGS` as JupyterLab user-settings files under ``settings_dir``."""
    for rel, value in LAB_SETTINGS.items():
        f = settings_dir / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shrink_png(path: Path, limit: int = MAX_PNG_BYTES) -> None:
    """Re-save a PNG with a 256-colour palette if it is over ``limit`` bytes (needs Pillow)."""
    if path.stat().st_size <= limit:
        return
    try:
        from PIL import Image
    except ImportError:
        print(f"warning: {path} is {path.stat().st_size} bytes (> {limit}); install Pillow to shrink it")
        return
    img = Image.open(path).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    if path.stat().st_size > limit:
        w, h = img.size
        img.resize((w * 3 // 4, h * 3 // 4), Image.LANCZOS).quantize(colors=256).save(path, optimize=True)


class LabServer:
    """``jupyter lab`` on ``root_dir`` in its own process group; a context manager that always stops it."""

    def __init__(self, root_dir: Path, env: dict, workdir: Path, startup_timeout: float = 300.0):
        self.root_dir, self.env, self.workdir = root_dir, env, workdir
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "jupyter_lab.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "LabServer":
        jupyter = Path(sys.executable).with_name("jupyter")
        if not jupyter.exists():
            raise Missing(f"{jupyter} not found: run this script with the project's .venv/bin/python")
        settings_dir, ws_dir = self.workdir / "lab_settings", self.workdir / "lab_workspaces"
        write_lab_settings(settings_dir)
        ws_dir.mkdir(exist_ok=True)
        cmd = [str(jupyter), "lab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={self.token}", "--LabApp.extension_manager=readonly",
               f"--ServerApp.root_dir={self.root_dir}", "--expose-app-in-browser",
               f"--LabApp.user_settings_dir={settings_dir}", f"--LabApp.workspaces_dir={ws_dir}",
               # a loaded machine can take over a minute to start a kernel that imports torch
               f"--MappingKernelManager.kernel_info_timeout={self.startup_timeout:.0f}",
               # trust database and signing key in the temp folder, not in the user's data dir
               f"--NotebookNotary.db_file={self.workdir / 'nbsignatures.db'}",
               f"--NotebookNotary.secret_file={self.workdir / 'notebook_secret'}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers/CI often run as root
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def api(self, path: str, method: str = "GET", timeout: float = 10.0):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def _wait_ready(self) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.startup_timeout:
            if self.proc.poll() is not None:
                raise Missing(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("/api/status", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise CheckFailed(f"jupyter lab did not answer within {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Shut down kernels and server via the REST API; SIGTERM then SIGKILL the group as fallbacks."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self._log.close()
            return
        try:
            for k in self.api("/api/kernels") or []:
                self.api(f"/api/kernels/{k['id']}", method="DELETE")
        except Exception:  # noqa: BLE001 - best effort, the server shutdown below ends them too
            pass
        try:
            self.api("/api/shutdown", method="POST")
        except Exception:  # noqa: BLE001
            pass
        for sig, wait in ((None, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if sig is not None:
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._log.close()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- browser side -------------------------------------------------------------------------------

JS_NOTEBOOK_READY = """() => {
  const app = window.jupyterapp; if (!app) return false;
  const w = app.shell.currentWidget;
  return !!(w && w.content && w.content.model && w.context && w.context.isReady
            && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel);
}"""

# Progress of the run, from the notebook model (not the DOM): cells still queued/running, errors.
JS_RUN_STATE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.model.cells;
  let code = 0, done = 0, counted = 0, errors = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    code++;
    const src = c.sharedModel.getSource();
    if (src.trim() === '' || c.executionCount !== null) done++;
    if (src.trim() !== '' && c.executionCount !== null) counted++;
    for (let k = 0; k < c.outputs.length; k++) {
      const o = c.outputs.get(k).toJSON();
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  }
  const busy = Array.from(w.content.node.querySelectorAll('.jp-InputPrompt'))
      .filter(p => p.textContent.includes('*')).length;  // cells shown as [*]: queued or running
  return {code, done, counted, busy, errors, status: w.sessionContext.kernelDisplayStatus};
}"""


# Marks (data-h2t-shot) the nth plotly 3D view outside widgets (any, if none) and the output area of
# the nth cell showing ipywidgets; reports counts and visible render errors.
JS_MARK = """([nthPlot, nthWidget]) => {
  const nb = window.jupyterapp.shell.currentWidget.content.node;
  const plots = Array.from(nb.querySelectorAll('.jp-OutputArea-output.js-plotly-plot, .jp-OutputArea-output .js-plotly-plot'));
  const is3d = gd => (gd._fullLayout && gd._fullLayout._subplots)
      ? (gd._fullLayout._subplots.gl3d || []).length > 0 : !!gd.querySelector('.gl-container canvas');
  const plots3d = plots.filter(is3d);
  const outer = plots3d.filter(gd => !gd.closest('.jupyter-widgets'));
  const plot = (outer.length > nthPlot ? outer : plots3d)[nthPlot];
  const widgets = Array.from(nb.querySelectorAll('.jp-Cell-outputArea'))  // whole cell outputs (controls
      .filter(o => o.querySelector('.jupyter-widgets'));                    // and interactive_output)
  const widget = widgets[nthWidget];
  if (plot) plot.setAttribute('data-h2t-shot', 'plot3d');
  if (widget) widget.setAttribute('data-h2t-shot', 'widget');
  const problems = [];
  const text = nb.innerText;
  for (const bad of ['Error displaying widget', 'WebGL is not supported', 'Loading widget...'])
    if (text.includes(bad)) problems.push(bad);
  return {plots: plots.length, plots3d: plots3d.length, widgets: widgets.length,
          plot_marked: !!plot, widget_marked: !!widget, problems};
}"""


def _wait(fn, timeout: float, what: str, interval: float = 0.5):
    t0 = time.monotonic()
    while True:
        res = fn()
        if res:
            return res
        if time.monotonic() - t0 > timeout:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


JS_WIDGET_OUTPUTS = "el => Array.from(el.querySelectorAll('.widget-output')).map(o => o.innerHTML).join('|')"


def check_widget_responds(page, widget) -> None:
    """Move the widget's first slider one step (keyboard) and wait for its output to re-render.

    This checks the round trip browser -> kernel -> browser (comms of the widget manager). Widgets
    without a slider or without an Output child are only reported.
    """
    handle = widget.locator(".widget-slider .noUi-handle").first
    if not widget.locator(".widget-slider .noUi-handle").count() or not widget.locator(".widget-output").count():
        print("widget has no slider + output to move: interactivity not checked")
        return
    readout = widget.locator(".widget-slider .widget-readout").first
    before_val, before_out = readout.inner_text(), widget.evaluate(JS_WIDGET_OUTPUTS)
    handle.focus()
    for key in ("ArrowRight", "ArrowLeft", "ArrowLeft"):  # left twice: back past the start if at max
        page.keyboard.press(key)
        page.wait_for_timeout(300)
        if readout.inner_text() != before_val:
            break
    after_val = readout.inner_text()
    if after_val == before_val:
        raise CheckFailed(f"the widget slider did not move (readout stays {before_val!r})")
    _wait(lambda: widget.evaluate(JS_WIDGET_OUTPUTS) != before_out and page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus === 'idle'"),
        120, "the widget output to re-render after moving its slider")
    print(f"widget responds: slider {before_val} -> {after_val}, output re-rendered by the kernel")


def take_screenshots(server: LabServer, nb_rel: str, out: Path, chromium: str, prefix: str,
                     run_timeout: float, width: int, height: int, console: list,
                     nth_plot: int = 0, nth_widget: int = 0) -> dict:
    """Open ``nb_rel`` in headless Chromium, run all cells, screenshot a 3D view and a widget."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise Missing("the Python package `playwright` is missing: `.venv/bin/pip install playwright` "
                      "(no `playwright install` needed: the system Chromium is used)") from e

    shots = {}
    with sync_playwright() as pw:
        # SwiftShader: software WebGL (plotly 3D needs WebGL; a headless machine has no GPU).
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
            "--no-sandbox", "--disable-dev-shm-usage"])
        page = None
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
            page.on("console", lambda m: console.append(f"[console.{m.type}] {m.text}"))
            page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
            url = f"{server.base}/lab/tree/{nb_rel}?token={server.token}&reset"
            t_start = time.monotonic()
            ms = server.startup_timeout * 1000
            page.goto(url, wait_until="domcontentloaded", timeout=ms)
            page.wait_for_function(JS_NOTEBOOK_READY, timeout=ms, polling=500)
            page.wait_for_function(
                "() => window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus === 'idle'",
                timeout=ms, polling=500)
            print(f"notebook open, kernel idle after {time.monotonic() - t_start:.1f} s")
            webgl = page.evaluate("() => !!document.createElement('canvas').getContext('webgl')")
            if not webgl:
                console.append("[h2t] WebGL is NOT available in this browser: plotly 3D cannot render")

            # Fresh run: clear the saved outputs, then "Run All Cells".
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
            if page.evaluate(JS_RUN_STATE)["counted"]:
                raise CheckFailed("clearing the saved outputs did not reset the execution counts")
            # (not awaited: the command's promise only settles when the whole run is over)
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            t0 = time.monotonic()

            def finished():
                st = page.evaluate(JS_RUN_STATE)
                if st["errors"]:
                    raise CheckFailed("cell error(s) in JupyterLab: " + "; ".join(st["errors"]))
                return st if (st["done"] == st["code"] and st["busy"] == 0 and st["status"] == "idle") else None

            state = _wait(finished, run_timeout, "all cells to run and the kernel to be idle", interval=1.0)
            print(f"ran {state['code']} code cells in {time.monotonic() - t0:.1f} s (kernel idle)")

            # Let plotly / widget views finish rendering, then mark what to photograph.
            page.wait_for_timeout(1500)
            found = page.evaluate(JS_MARK, [nth_plot, nth_widget])
            print(f"found {found['plots3d']} plotly 3D view(s) (of {found['plots']} plotly outputs) and "
                  f"{found['widgets']} cell(s) with widgets")
            if found["problems"]:
                raise CheckFailed("render error(s) in the page: " + "; ".join(found["problems"]))
            if not found["plot_marked"]:
                raise CheckFailed(f"no rendered plotly 3D view number {nth_plot} "
                                  f"({found['plots']} plotly output(s); WebGL={webgl})")
            if not found["widget_marked"]:
                raise CheckFailed(f"no rendered ipywidgets output number {nth_widget} "
                                  "(widget manager missing or failed?)")

            out.mkdir(parents=True, exist_ok=True)
            plot = page.locator("[data-h2t-shot='plot3d']")
            plot.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            shots["3d_view"] = out / f"{prefix}3d_view.png"
            plot.screenshot(path=str(shots["3d_view"]))
            shots["overview"] = out / f"{prefix}overview.png"
            page.screenshot(path=str(shots["overview"]))

            widget = page.locator("[data-h2t-shot='widget']")  # the cell's output: controls + what they drive
            widget.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)
            shots["widget"] = out / f"{prefix}widget.png"
            widget.screenshot(path=str(shots["widget"]))
            check_widget_responds(page, widget)
        except Exception:
            if page is not None:  # what the page looked like, for the report
                try:
                    out.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(out / f"{prefix}failure.png"))
                    print(f"page at failure -> {out / f'{prefix}failure.png'}", file=sys.stderr)
                except Exception as e:  # noqa: BLE001
                    print(f"(no failure screenshot: {e})", file=sys.stderr)
            raise
        finally:
            browser.close()
    for p in shots.values():
        shrink_png(p)
    return shots


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", type=Path, help="the .ipynb to open (served from its own folder)")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="folder for the PNGs")
    ap.add_argument("--fast", action="store_true", help="set H2T_FAST=1 for the kernel")
    ap.add_argument("--prefix", default="lab_", help="file name prefix of the PNGs (default lab_)")
    ap.add_argument("--chromium", default=None, help="Chromium binary (default: $CHROMIUM or PATH)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed for running all cells")
    ap.add_argument("--start-timeout", type=float, default=300,
                    help="seconds allowed for the server, the page and the kernel to start")
    ap.add_argument("--size", default="1400x900", help="browser window WIDTHxHEIGHT")
    ap.add_argument("--nth-plot", type=int, default=0, help="which plotly 3D view to shoot (0 = first)")
    ap.add_argument("--nth-widget", type=int, default=0, help="which cell with widgets to shoot (0 = first)")
    ap.add_argument("--console-log", type=Path, default=None, help="write the browser console here")
    args = ap.parse_args(argv)

    nb = args.notebook.resolve()
    if not nb.is_file() or nb.suffix != ".ipynb":
        print(f"error: {args.notebook} is not a notebook file", file=sys.stderr)
        return 2
    try:
        chromium = find_chromium(args.chromium)
    except Missing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    env = dict(os.environ)
    if args.fast:
        env["H2T_FAST"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("JUPYTER_TOKEN", None)

    # JupyterLab writes .ipynb_checkpoints/<name>-checkpoint.ipynb on open: remove what we add.
    digest = file_digest(nb)
    checkpoints = nb.parent / ".ipynb_checkpoints"
    checkpoint = checkpoints / f"{nb.stem}-checkpoint{nb.suffix}"
    had_checkpoints, had_checkpoint = checkpoints.exists(), checkpoint.exists()
    console: list[str] = []
    rc = 0
    with tempfile.TemporaryDirectory(prefix="h2t_lab_") as tmp:
        env["JUPYTER_RUNTIME_DIR"] = str(Path(tmp) / "runtime")
        server = None
        try:
            with LabServer(nb.parent, env, Path(tmp), args.start_timeout) as server:
                print(f"jupyter lab on {server.base} (root {nb.parent}); chromium {chromium}")
                shots = take_screenshots(server, nb.name, args.out, chromium, args.prefix,
                                         args.timeout, width, height, console,
                                         args.nth_plot, args.nth_widget)
            for stale in (args.out / f"{args.prefix}failure.png", args.out / f"{args.prefix}failure_server.log"):
                if stale.exists():
                    stale.unlink()  # from an earlier failed run
            for name, p in shots.items():
                print(f"saved {p} ({p.stat().st_size / 1e3:.0f} kB)")
        except Missing as e:
            print(f"error: {e}", file=sys.stderr)
            rc = 2
        except Exception as e:  # noqa: BLE001 - report, keep the cleanup below
            print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            if server is not None:
                print("--- jupyter lab log (tail) ---\n" + server.log_tail(), file=sys.stderr)
                if server.log_path.exists():
                    args.out.mkdir(parents=True, exist_ok=True)
                    shutil.copy(server.log_path, args.out / f"{args.prefix}failure_server.log")
                    print(f"server log -> {args.out / f'{args.prefix}failure_server.log'}", file=sys.stderr)
            rc = 1
    # The notebook on disk must be untouched (autosave is off and nothing saves). Not restored
    # automatically: someone else (an editor, nbconvert --inplace) may have written it meanwhile.
    if file_digest(nb) != digest:
        print(f"warning: {nb} changed on disk during the run (this tool never saves it)", file=sys.stderr)
    if not had_checkpoint and checkpoint.exists():
        checkpoint.unlink()
    if not had_checkpoints and checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()

    errors = [c for c in console if c.startswith(("[console.error]", "[pageerror]", "[h2t]"))]
    if args.console_log:
        args.console_log.parent.mkdir(parents=True, exist_ok=True)
        args.console_log.write_text("\n".join(console) + "\n")
        print(f"browser console ({len(console)} lines, {len(errors)} errors) -> {args.console_log}")
    for line in errors:
        print(line[:400], file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
