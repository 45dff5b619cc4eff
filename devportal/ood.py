"""An emulation of the Open OnDemand dashboard's batch-connect path, for tests.

Written from OOD's documented behaviour (ood_core's batch-connect templates and the
dashboard's staging; never copied from OOD):
- render form.yml.erb / submit.yml.erb / view / card panels with real Ruby ERB
  (render.rb), YAML parsed with safe_load, HTML through Redcarpet;
- stage a session as the dashboard does: staged_root with mode 0700, template/
  copied by rsync without *.erb files, every template/**/*.erb rendered with
  its source's mode, user_defined_context.json;
- build the "basic" job script (jobscript.py) and run it, either straight with
  bash in a clean environment or through real Slurm with the flags OOD's Slurm
  adapter passes (jobs.py).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

APP_ROOT = Path(__file__).resolve().parents[1]
RENDER_RB = Path(__file__).with_name("render.rb")
APP_TOKEN = "sys/mlflow"


class RenderError(RuntimeError):
    """The dashboard would show this message (on the form page or the card)."""


def ruby_render(mode: str, request: dict | None = None, env: dict | None = None, app_root: Path = APP_ROOT) -> str:
    args = ["ruby", str(RENDER_RB), mode, str(app_root)]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as req:
        if request is not None:
            json.dump(request, req)
            req.flush()
            args.append(req.name)
        run_env = dict(os.environ)
        run_env.pop("MLFLOW_OOD_CONFIG", None)
        run_env.update(env or {})
        proc = subprocess.run(args, capture_output=True, text=True, env=run_env, timeout=60)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    return proc.stdout


def render_form(env: dict | None = None, app_root: Path = APP_ROOT) -> dict:
    return json.loads(ruby_render("form", env=env, app_root=app_root))


def form_defaults(form: dict) -> dict:
    """What the dashboard posts when the user changes nothing: each shown field's value."""
    values = {}
    attributes = form.get("attributes", {})
    for name in ["cluster"] + list(form.get("form", [])):
        spec = attributes.get(name, {})
        if not isinstance(spec, dict):
            continue  # fixed: not posted
        if name == "cluster":
            values[name] = form["cluster"] if isinstance(form["cluster"], str) else form["cluster"][0]
        else:
            value = spec.get("value", "")
            if value == "" and spec.get("widget") == "select" and spec.get("options"):
                option = spec["options"][0]
                value = option[1] if isinstance(option, list) else option
            values[name] = str(value)
    return values


def fixed_values(form: dict) -> dict:
    """Attributes given a scalar in form.yml: hard-coded, not posted, still in the context.

    As in the dashboard, only attributes named in the `form:` list exist at all."""
    attributes = form.get("attributes", {})
    return {k: str(attributes[k]) for k in form.get("form", [])
            if k in attributes and not isinstance(attributes[k], dict)}


def render_submit(context: dict, staged_root: Path, env: dict | None = None, app_root: Path = APP_ROOT) -> dict:
    request = {"context": context, "staged_root": str(staged_root)}
    return json.loads(ruby_render("submit", request, env=env, app_root=app_root))


@dataclass
class Session:
    id: str
    staged_root: Path
    user_context: dict  # what the user posted (user_defined_context.json)
    context: dict  # user_context plus fixed attributes
    submit: dict  # submit.yml.erb after YAML
    user: str | None = None
    env: dict = field(default_factory=dict)  # the dashboard's environment (site config)

    @property
    def output_log(self) -> Path:
        return self.staged_root / "output.log"

    @property
    def connection_file(self) -> Path:
        return self.staged_root / "connection.yml"

    def output(self) -> str:
        try:
            return self.output_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connection(self) -> dict:
        return yaml.safe_load(self.connection_file.read_text())

    def _card_request(self, status: str) -> dict:
        return {"staged_root": str(self.staged_root), "session": {"id": self.id, "status": status}}

    def render_view(self) -> str:
        return ruby_render("view", self._card_request("running"), env=self.env)

    def render_info(self, status: str = "running") -> str:
        return ruby_render("info", self._card_request(status), env=self.env)

    def render_completed(self) -> str:
        return ruby_render("completed", self._card_request("completed"), env=self.env)


def dataroot_for(user: str | None) -> Path:
    home = Path(pwd.getpwnam(user).pw_dir) if user else Path.home()
    return home / "ondemand" / "data" / "sys" / "dashboard"


def stage(values: dict, user: str | None = None, env: dict | None = None, dataroot: Path | None = None,
          app_root: Path = APP_ROOT) -> Session:
    """Launch-button path up to submission: render submit.yml.erb, then stage the session."""
    env = dict(env or {})
    form = render_form(env, app_root)
    user_context = form_defaults(form)
    user_context.update({k: str(v) for k, v in values.items()})
    context = dict(user_context, **fixed_values(form))
    session_id = str(uuid.uuid4())
    root = (dataroot or dataroot_for(user)) / "batch_connect" / APP_TOKEN / "output" / session_id
    submit = render_submit(context, root, env, app_root)  # before staging, as the dashboard does
    root.mkdir(parents=True, mode=0o700)
    root.chmod(0o700)
    subprocess.run(
        ["rsync", "-rlp", "--exclude", ".*.swp", "--exclude", "*.erb", f"{app_root / 'template'}/", str(root)],
        check=True, capture_output=True, timeout=60,
    )
    (root / "user_defined_context.json").write_text(json.dumps(user_context, indent=2))
    ruby_render("stage", {"context": context, "staged_root": str(root), "session": {"id": session_id}}, env=env,
                app_root=app_root)
    if user:
        _chown_dataroot(dataroot or dataroot_for(user), user)
    return Session(session_id, root, user_context, context, submit, user, env)


def chown_tree(top: Path, user: str) -> None:
    """Give `top` and everything below it to `user`."""
    entry = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.lchown(name, entry.pw_uid, entry.pw_gid)


def _chown_dataroot(top: Path, user: str) -> None:
    """The dataroot and the parents OOD would have made for the user, up to the home."""
    chown_tree(top, user)
    entry = pwd.getpwnam(user)
    parent, home = top, Path(entry.pw_dir)
    while parent != home and home in parent.parents:
        os.lchown(parent, entry.pw_uid, entry.pw_gid)
        parent = parent.parent


def as_user(user: str | None, argv: list) -> list:
    """argv run as `user` (tests run as root, sessions belong to a normal user)."""
    if not user:
        return argv
    return [shutil.which("runuser") or "/sbin/runuser", "-u", user, "--"] + argv
