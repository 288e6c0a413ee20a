"""The class's hub beyond one machine, checked as far as this machine can (no Docker, no Kubernetes).

hub/jupyterhub_config.py loads and gives the roster's roles; hub/Dockerfile installs exactly the
pins of requirements.txt and keeps solutions/ out of the student image; hub/kubernetes/values.yaml
parses, and its hub configuration runs and gives each member what course/hub.py gives them.
"""

import re
import sys
import types
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from course.paths import ROOT
from course.settings import HUB_ROOT

HUB = ROOT / "hub"


def test_the_hub_configuration_loads_with_the_roster(tmp_path, monkeypatch):
    (tmp_path / "roster.csv").write_text("id,first_name,last_name,email,role\nada,Ada,L,,instructor\n"
                                         "ana,Ana,R,,student\nben,,,,\n")
    monkeypatch.setenv("COURSE_HUB_ROOT", str(tmp_path))
    monkeypatch.setenv("COURSE_HUB_PORT", "18000")
    c = PyFileConfigLoader("jupyterhub_config.py", path=str(HUB)).load_config()
    assert c.Authenticator.allowed_users == {"ana", "ben"}
    assert c.Authenticator.admin_users == {"ada"}
    assert c.JupyterHub.authenticator_class == "pam" and c.JupyterHub.spawner_class == "localprocess"
    assert c.JupyterHub.bind_url == "http://127.0.0.1:18000"
    assert Path(c.Spawner.cmd[0]).parent == Path(sys.executable).parent

    class Spawner:  # what the pre-spawn hook reads and sets
        environment, notebook_dir = {}, ""

        def __init__(self, name):
            self.user = types.SimpleNamespace(name=name)
            self.environment = {}

    for name, role, folder in (("ada", "instructor", str(tmp_path / "course")), ("ben", "student", "~")):
        spawner = Spawner(name)
        c.Spawner.pre_spawn_hook(spawner)
        assert spawner.environment["JUPYTER_CONFIG_DIR"] == str(HUB / role)
        assert spawner.environment["COURSE_HUB_ROOT"] == str(tmp_path)
        assert spawner.notebook_dir == folder


def test_the_image_installs_the_pinned_requirements_and_keeps_solutions_out_of_the_student_image():
    dockerfile = (HUB / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    names = [stage.split()[2] for stage in stages]
    assert names == ["student", "instructor"], names
    student, instructor = stages
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs and all(re.findall(r"pip install --no-cache-dir (-r requirements.txt|--no-deps -e \.)",
                                        line) for line in installs), installs
    assert "solutions" not in re.sub(r"#.*", "", student), "the student image must not hold solutions/"
    assert re.search(r"^COPY solutions/", instructor, re.M)
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert stages[0].startswith(f"python:{python.split('=')[1]}-"), "the image's Python is environment.yml's"


def test_the_kubernetes_values_parse_and_give_each_member_their_uid_image_and_folders():
    values = yaml.safe_load((HUB / "kubernetes" / "values.yaml").read_text())
    custom = values["custom"]
    assert values["singleuser"]["image"]["name"].endswith("/pytorch-basics-student")
    assert custom["instructorImage"].split(":")[0].endswith("/pytorch-basics-instructor")
    assert values["singleuser"]["extraEnv"]["COURSE_HUB_ROOT"] == HUB_ROOT

    def get_config(key):
        node = values
        for part in key.split("."):
            node = node[part]
        return node

    c = Config()
    sys.modules["z2jh"] = types.SimpleNamespace(get_config=get_config)
    try:
        for name, code in values["hub"]["extraConfig"].items():
            exec(compile(code, name, "exec"), {"c": c})
    finally:
        del sys.modules["z2jh"]
    assert c.Authenticator.admin_users == set(custom["instructors"])
    assert c.Authenticator.allowed_users == set(custom["students"])
    spawned = {}
    for name in custom["instructors"] + custom["students"]:
        spawner = types.SimpleNamespace(user=types.SimpleNamespace(name=name), environment={}, volume_mounts=[],
                                        image=values["singleuser"]["image"]["name"], notebook_dir="~")
        c.KubeSpawner.pre_spawn_hook(spawner)
        spawned[name] = spawner
    uids = [s.uid for s in spawned.values()]
    assert len(set(uids)) == len(uids) and min(uids) >= 10000, "every member needs a uid of their own"
    for name, spawner in spawned.items():
        instructor = name in custom["instructors"]
        assert (spawner.image == custom["instructorImage"]) == instructor
        assert any(m["mountPath"].endswith("/course") for m in spawner.volume_mounts) == instructor
        assert (getattr(spawner, "supplemental_gids", []) == [custom["instructorsGid"]]) == instructor
        assert (spawner.environment.get("DASK_GATEWAY__AUTH__TYPE") == "jupyterhub") == instructor


def test_the_dask_gateway_values_give_instructors_alone_clusters_of_the_instructor_image():
    from dask_gateway_server.models import User
    from dask_gateway_server.options import Options

    hub = yaml.safe_load((HUB / "kubernetes" / "values.yaml").read_text())
    gateway = yaml.safe_load((HUB / "kubernetes" / "dask-gateway-values.yaml").read_text())["gateway"]
    backend = gateway["backend"]
    assert f"{backend['image']['name']}:{backend['image']['tag']}" == hub["custom"]["instructorImage"]
    assert backend["worker"]["threads"] == 1, "a worker grades one student at a time"
    assert gateway["auth"]["type"] == "jupyterhub" and "dask-gateway" in hub["hub"]["services"]
    # The hub's route to the gateway and the instructors' proxy address name the same release.
    environment = hub["custom"]["gatewayEnvironment"]
    release = re.search(r"traefik-(\w+)-dask-gateway", hub["hub"]["services"]["dask-gateway"]["url"]).group(1)
    assert f"traefik-{release}-dask-gateway" in environment["DASK_GATEWAY__PROXY_ADDRESS"]
    assert environment["DASK_GATEWAY__ADDRESS"].endswith("/services/dask-gateway")
    c = Config()
    for name, code in sorted(gateway["extraConfig"].items()):
        exec(compile(code, name, "exec"), {"c": c})
    options = c.Backend.cluster_options
    assert isinstance(options, Options)
    assert options.get_configuration({}, User("ada", admin=True)) == {}
    with pytest.raises(PermissionError, match="ben may not start a cluster"):
        options.get_configuration({}, User("ben"))


@pytest.mark.parametrize("path", ["student", "instructor"])
def test_each_role_has_its_jupyter_settings(path):
    folder = HUB / path
    assert (folder / "jupyter_server_config.py").is_file() and (folder / "nbgrader_config.py").is_file()
    disabled = yaml.safe_load((folder / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    instructor_only = {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                       "@jupyter/nbgrader:course-list"}
    assert (instructor_only <= set(disabled)) == (path == "student")
    assert "@jupyter/nbgrader:assignment-list" not in disabled
