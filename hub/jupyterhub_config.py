"""JupyterHub for one class on one machine, started by `python -m course hub start` (course/hub.py).

Users log in with their system password (PAM); the roster says who may, and who is an
instructor (a hub admin). Each user's JupyterLab runs as that user with the course's
environment; its Jupyter settings come from hub/student/ or hub/instructor/, so only
instructors get the formgrader and Create Assignment, and students get the Assignments panel
and Validate. The hub's own files (database, cookie secret) are in the hub folder's state/.
"""

import os
import sys
from pathlib import Path

from course.hub import PROXY, Hub

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

hub = Hub(os.environ["COURSE_HUB_ROOT"])
members = {m.id: m for m in hub.members()}
ip, port = os.environ.get("COURSE_HUB_IP", "127.0.0.1"), int(os.environ.get("COURSE_HUB_PORT", "8000"))

c.JupyterHub.bind_url = f"http://{ip}:{port}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{port + 1}"  # the hub's API, for the proxy and the servers
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 2}"
c.ConfigurableHTTPProxy.command = [str(PROXY)]
c.ConfigurableHTTPProxy.pid_file = str(hub.state / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{hub.state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub.state / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = c.JupyterHub.cleanup_proxy = True  # stopping the hub stops everything

c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {name for name, m in members.items() if m.role == "student"}
c.Authenticator.admin_users = {name for name, m in members.items() if m.role == "instructor"}
c.PAMAuthenticator.open_sessions = False  # no login session (utmp, systemd) for a notebook server

c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = c.Spawner.http_timeout = 120  # a cold start on a busy 2-core machine


def member_settings(spawner) -> None:
    """The member's settings (course.hub.Hub.settings) and folder: the course folder for instructors."""
    member = members[spawner.user.name]
    spawner.environment.update(hub.settings(member))
    spawner.notebook_dir = str(hub.course) if member.role == "instructor" else "~"


c.Spawner.pre_spawn_hook = member_settings
