"""LocalProfilesSpawner in-process: the form, what is refused and why, home names, and what start() does
before and when it starts a server (with a stand-in server command that reports what it saw)."""

from __future__ import annotations

import asyncio
import grp
import html
import json
import os
import re
import shutil
import stat
import sys

import pytest
from traitlets import TraitError

from jupyterhub_ext.errors import ConfigError, SpawnRefused
from jupyterhub_ext.local import accounts
from jupyterhub_ext.local.spawner import CONTENTS_MANAGER

from .helpers import COURSE, is_root, local_config, make_spawner, needs_root

STUDENT_PROFILES = {"data-engineering", "elyra"}
HARDWARE_PROFILES = {"trainium", "inferentia", "gpu-timeslice", "gpu-mig", "gpu"}


def radios(form: str) -> dict[str, bool]:
    """slug -> enabled, for every profile radio button of the rendered form."""
    out = {}
    for tag in re.findall(r"<input[^>]*type=\"radio\"[^>]*>", form, flags=re.S):
        slug = re.search(r'value="([^"]+)"', tag).group(1)
        out[slug] = " disabled" not in tag
    return out


def reason_of(form: str, slug: str) -> str:
    m = re.search(rf'<p class="jhe-reason" id="profile-reason-{re.escape(slug)}">(.*?)</p>', form, flags=re.S)
    return html.unescape(m.group(1)) if m else ""


# -- the form --------------------------------------------------------------------------------------------

def test_student_form_offers_only_the_profiles_of_their_groups(data_dir):
    s = make_spawner(local_config(data_dir), "student")
    form = s._render_form(s)
    assert radios(form) == {slug: True for slug in STUDENT_PROFILES}
    assert 'id="kubespawner-profiles-list"' in form  # KubeSpawner's own template
    assert 'name="profile-option-data-engineering--image"' in form
    for hidden in HARDWARE_PROFILES:
        assert hidden not in form  # not even as unavailable: students may not see them
    assert re.search(r'value="data-engineering"\s*checked', form)


def test_instructor_sees_every_profile_and_why_the_hardware_ones_cannot_start_here(data_dir):
    s = make_spawner(local_config(data_dir), "instructor", admin=True)
    form = s._render_form(s)
    assert radios(form) == {**{p: True for p in STUDENT_PROFILES}, **{p: False for p in HARDWARE_PROFILES}}
    assert "NVIDIA GPU" in reason_of(form, "gpu") and "no nvidia-smi" in reason_of(form, "gpu")
    assert "MIG mode" in reason_of(form, "gpu-mig")
    assert "Trainium" in reason_of(form, "trainium") and "/dev/neuron" in reason_of(form, "trainium")
    assert "Inferentia" in reason_of(form, "inferentia")
    # the unavailable radios carry no name: a browser never submits them
    unavailable_block = form[form.index('id="jupyterhub-ext-unavailable-profiles"'):]
    assert 'name="profile"' not in unavailable_block


def test_a_machine_with_an_nvidia_gpu_offers_the_gpu_profiles_but_not_mig_or_neuron(data_dir):
    s = make_spawner(local_config(data_dir, accelerators=["nvidia-gpu"]), "instructor", admin=True)
    enabled = radios(s._render_form(s))
    assert {p for p, on in enabled.items() if on} == STUDENT_PROFILES | {"gpu", "gpu-timeslice"}
    assert {p for p, on in enabled.items() if not on} == {"gpu-mig", "trainium", "inferentia"}


def test_group_members_see_their_hardware_profiles_marked_unavailable(data_dir):
    s = make_spawner(local_config(data_dir), "gina", groups=["gpu-users"])
    assert radios(s._render_form(s)) == {"data-engineering": True, "elyra": True, "gpu-timeslice": False,
                                         "gpu-mig": False}


def test_unknown_accelerator_names_are_refused(data_dir):
    with pytest.raises(TraitError, match="unknown accelerators"):
        make_spawner(local_config(data_dir, accelerators=["tpu"]))


# -- requests ------------------------------------------------------------------------------------------

def test_form_submission_is_parsed_like_kubespawner_and_checked(data_dir):
    s = make_spawner(local_config(data_dir), "student")
    ok = s._options_from_form({"profile": ["data-engineering"], "profile-option-data-engineering--image":
                               ["pyspark-3-4"]})
    assert ok == {"profile": "data-engineering", "image": "pyspark-3-4"}
    with pytest.raises(SpawnRefused, match="unknown choice 'large'"):
        s._options_from_form({"profile": ["data-engineering"], "profile-option-data-engineering--size": ["large"]})
    with pytest.raises(SpawnRefused, match="not one you may start"):
        s._options_from_form({"profile": ["gpu"]})


def test_an_unavailable_profile_is_refused_with_its_reason(data_dir):
    s = make_spawner(local_config(data_dir), "instructor", admin=True)
    with pytest.raises(SpawnRefused) as info:
        s._apply_user_options(s, {"profile": "gpu"})
    assert info.value.status_code == 400
    assert info.value.jupyterhub_message.startswith("Data Science (full GPU) is not available on this machine")
    assert "NVIDIA GPU" in info.value.jupyterhub_message
    with pytest.raises(SpawnRefused, match="Trainium"):
        s._options_from_form({"profile": ["trainium"], "profile-option-trainium--image": ["pytorch-neuronx"]})


def test_empty_options_start_the_default_and_fall_back_when_it_needs_missing_hardware(data_dir):
    s = make_spawner(local_config(data_dir), "student")
    assert s.selection_for({}).profile.slug == "data-engineering"
    catalog = [
        {"slug": "big-gpu", "display_name": "GPU", "default": True, "hardware": {"kind": "gpu", "gpus": 1}},
        {"slug": "small", "display_name": "CPU", "hardware": {"kind": "cpu"}},
    ]
    s = make_spawner(local_config(data_dir, catalog_file="", profiles=catalog), "student")
    assert s.selection_for({}).profile.slug == "small"
    assert radios(s._render_form(s)) == {"small": True, "big-gpu": False}
    assert re.search(r'value="small"\s*checked', s._render_form(s))
    only_gpu = make_spawner(local_config(data_dir, catalog_file="", profiles=catalog[:1]), "student")
    with pytest.raises(SpawnRefused, match="None of your profiles can run on this machine"):
        only_gpu.selection_for({})


def test_the_selection_sets_limits_and_environment_and_is_undone_next_time(data_dir):
    s = make_spawner(local_config(data_dir, environment={"KEEP": "1"}), "instructor", admin=True)
    s._apply_user_options(s, {"profile": "data-engineering", "size": "large"})
    assert s.mem_limit == 16 * 2**30 and s.cpu_limit == 4
    assert s.environment == {"KEEP": "1", "JUPYTERHUB_EXT_PROFILE": "data-engineering"}
    s._apply_user_options(s, {"profile": "elyra"})
    assert s.mem_limit == 8 * 2**30
    assert s.environment["JUPYTERHUB_EXT_PROFILE"] == "elyra" and s.environment["KEEP"] == "1"


# -- home names ----------------------------------------------------------------------------------------

@pytest.fixture
def kube_spawner_factory(tmp_path, monkeypatch):
    """ProfilesKubeSpawner(_mock=True) for the same user, as the reference for home names."""
    import kubernetes_asyncio.config.kube_config as kube_config

    from tests.support.kubeconfig import write_dummy_kubeconfig

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(write_dummy_kubeconfig(tmp_path)))

    async def build(name, uid, **settings):
        from traitlets.config import Config

        from jupyterhub_ext.spawner import ProfilesKubeSpawner

        c = Config()
        for key, value in settings.items():
            setattr(c.ProfilesKubeSpawner, key, value)
        spawner = ProfilesKubeSpawner(config=c, _mock=True)
        spawner.user.name, spawner.user.id = name, uid
        return spawner

    return lambda name, uid, **settings: asyncio.run(build(name, uid, **settings))


NAMES = ["student", "Alice.B", "ünïcödé", "a" * 80, "x-2e", "名前", "o'brien@example.org", "UPPER", "-lead"]


@pytest.mark.parametrize("settings", [{}, {"home_dir_scheme": "safe"}, {"home_subpath_template": "homes/{username}"},
                                      {"home_subpath_template": "by-id/{userid}-{safe_username}"}])
def test_local_homes_are_named_as_on_kubernetes(data_dir, kube_spawner_factory, settings):
    from tests.storage.names import usernames

    local = make_spawner(local_config(data_dir, **settings))
    kube = kube_spawner_factory("student", 1, **settings)
    for uid, name in enumerate(NAMES + list(usernames(300, seed=8)), start=1):
        local.user.name = kube.user.name = name
        local.user.id = kube.user.id = uid
        assert local.home_subpath() == kube.home_dir(), name


# -- start ---------------------------------------------------------------------------------------------

# What the stand-in server reports: who it runs as, where, with what, and whether it can write the shared folder.
REPORT = r"""
import json, os, sys
out = {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()), "cwd": os.getcwd(),
       "listing": sorted(os.listdir(".")), "umask": os.umask(0), "env": dict(os.environ), "args": sys.argv[1:]}
try:
    out["root_listing"] = sorted(os.listdir("/root"))
except OSError as e:
    out["root_listing"] = str(e)
with open("/proc/self/status") as f:
    out["no_new_privs"] = [l.split()[1] for l in f if l.startswith("NoNewPrivs")][0]
try:
    with open(os.path.join("shared", "probe-%d.txt" % os.getpid()), "w") as f:
        f.write("x")
    out["shared_write"] = "ok"
except OSError as e:
    out["shared_write"] = e.strerror
with open(os.environ["REPORT_TO"], "w") as f:
    json.dump(out, f)
"""


async def start_and_report(spawner, tmp_path) -> dict:
    report = tmp_path / f"report-{spawner.user.name}.json"
    os.chmod(tmp_path, 0o777)  # the server's uid writes the report here
    spawner.cmd = [sys.executable, "-c", REPORT]
    spawner.environment = {**spawner.environment, "REPORT_TO": str(report)}
    spawner.user_options = {"profile": "data-engineering"}
    await spawner.start()
    try:
        await asyncio.wait_for(asyncio.to_thread(spawner.proc.wait), 60)
    finally:
        await spawner.stop(now=True)
    log = open(os.path.join(spawner.layout.server_logs, os.path.basename(spawner.home) + ".log")).read()
    assert report.exists(), log
    return json.loads(report.read_text())


def seeded(listing) -> bool:
    return {"README.md", "week1", ".course-seeder"} <= set(listing)


@needs_root
async def test_per_user_servers_run_as_their_own_uid_with_a_seeded_private_home(data_dir, tmp_path, course):
    config = local_config(data_dir, course_source=str(course), run_servers_as="per-user", uid_base=61000)
    student = make_spawner(config, "student", uid=7)
    instructor = make_spawner(config, "instructor", admin=True, uid=8)
    s_report = await start_and_report(student, tmp_path)
    i_report = await start_and_report(instructor, tmp_path)

    assert s_report["uid"] == s_report["gid"] == 61001 and i_report["uid"] == 61002
    assert s_report["groups"] == [61001] or s_report["groups"] == []
    assert 61000 in i_report["groups"] and 61000 not in s_report["groups"]
    # the seeder ran, as the user, before the server started
    assert seeded(s_report["listing"]) and "shared" in s_report["listing"]
    home = data_dir / "homes" / "student"
    assert s_report["cwd"] == str(home) and s_report["env"]["HOME"] == str(home)
    for path in (home, home / "week1" / "01-weather-with-python.ipynb", home / ".course-seeder"):
        assert path.stat().st_uid == 61001
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    # the shared folder: kernel-enforced, read-only for the student, writable for the instructor
    assert s_report["shared_write"] == "Permission denied"
    assert i_report["shared_write"] == "ok"
    assert stat.S_IMODE((data_dir / "shared").stat().st_mode) == 0o2775
    assert s_report["no_new_privs"] == "1" and i_report["umask"] == 0o002 and s_report["umask"] == 0o022
    # the uids are remembered
    assert json.loads((data_dir / "hub" / "accounts.json").read_text())["users"] == {"student": 61001,
                                                                                    "instructor": 61002}
    # only the student's server gets the read-only contents manager
    assert f"--ServerApp.contents_manager_class={CONTENTS_MANAGER}" in s_report["args"]
    assert not any("contents_manager_class" in a for a in i_report["args"])
    assert s_report["env"]["USER"] == "student" and s_report["env"]["JUPYTERHUB_EXT_PROFILE"] == "data-engineering"
    assert s_report["env"]["MEM_LIMIT"] == str(8 * 2**30)
    # root's home stays private, also when the runtime the server uses is inside it (pyenv under /root)
    if not os.stat("/root").st_mode & 0o004:
        assert "Permission denied" in s_report["root_listing"]


async def test_hub_user_servers_run_as_the_hub_account(data_dir, tmp_path, course):
    config = local_config(data_dir, course_source=str(course), run_servers_as="hub-user")
    report = await start_and_report(make_spawner(config, "student"), tmp_path)
    assert report["uid"] == os.getuid()
    assert seeded(report["listing"]) and "shared" in report["listing"]
    assert os.path.realpath(data_dir / "homes" / "student" / "shared") == str(data_dir / "shared")
    assert f"--ReadOnlyDirsContentsManager.read_only_dirs={data_dir / 'shared'}" in report["args"]
    # documented limit: the same account can write the shared folder outside Jupyter
    assert report["shared_write"] == "ok"
    assert stat.S_IMODE((data_dir / "homes").stat().st_mode) == 0o700


async def test_the_seeder_runs_before_every_start_and_keeps_the_students_edit(data_dir, tmp_path, course):
    config = local_config(data_dir, course_source=str(course), run_servers_as="hub-user")
    spawner = make_spawner(config, "student")
    await start_and_report(spawner, tmp_path)
    notebook = data_dir / "homes" / "student" / "week1" / "01-weather-with-python.ipynb"
    notebook.write_text(notebook.read_text().replace("weather", "my own weather"))
    (course / "week2").mkdir()
    (course / "week2" / "new.md").write_text("# week 2\n")
    report = await start_and_report(spawner, tmp_path)
    assert "week2" in report["listing"]
    assert "my own weather" in notebook.read_text()


async def test_a_seeder_that_cannot_run_does_not_stop_the_server(data_dir, tmp_path, course, caplog):
    config = local_config(data_dir, course_source=str(course), run_servers_as="hub-user",
                          course_python="/nonexistent/python3")
    report = await start_and_report(make_spawner(config, "student"), tmp_path)
    assert "week1" not in report["listing"] and "shared" in report["listing"]
    assert "could not run" in caplog.text


async def test_progress_reports_the_steps_of_a_start(data_dir, tmp_path, course):
    spawner = make_spawner(local_config(data_dir, course_source=str(course), run_servers_as="hub-user"))
    events = []

    async def follow():
        while not spawner._starting:
            await asyncio.sleep(0.01)
        async for event in spawner.progress():
            events.append(event["message"])

    follower = asyncio.ensure_future(follow())
    await start_and_report(spawner, tmp_path)
    await asyncio.wait_for(follower, 5)
    assert events == ["Preparing your home directory", "Copying course material", "Starting JupyterLab"]


# -- the data directory ----------------------------------------------------------------------------------

def test_uids_are_allocated_once_and_skip_existing_accounts(tmp_path, monkeypatch):
    taken = {60002}
    monkeypatch.setattr(accounts, "_uid_exists", lambda uid: uid in taken)
    registry = accounts.UidRegistry(str(tmp_path / "hub" / "accounts.json"), 60001, 60004)
    assert registry.uid_for("a") == 60001
    assert registry.uid_for("b") == 60003
    assert accounts.UidRegistry(registry.path, 60001, 60004).uid_for("a") == 60001
    assert registry.uid_for("c") == 60004
    with pytest.raises(RuntimeError, match="no free uid"):
        registry.uid_for("d")


@needs_root
def test_a_home_made_for_another_uid_is_handed_over_and_user_files_are_kept(tmp_path):
    layout = accounts.Layout(str(tmp_path / "data"))
    layout.prepare(accounts.PER_USER, 61000)
    home = tmp_path / "data" / "homes" / "alice"
    (home / "work").mkdir(parents=True)
    (home / "work" / "notes.txt").write_text("mine")
    os.symlink("/etc/passwd", home / "link")  # must be chowned as a link, never followed
    (home / "shared").mkdir()  # the user's own folder named "shared"
    ident = accounts.Identity(61005, 61005, (), 0o022, False)
    path, warnings = accounts.prepare_home(layout, "alice", ident)
    assert any("owned by uid 0" in w for w in warnings) and any("user's own folder" in w for w in warnings)
    assert (home / "work" / "notes.txt").stat().st_uid == 61005
    assert os.lstat(home / "link").st_uid == 61005 and os.stat("/etc/passwd").st_uid == 0
    assert (home / "shared").is_dir() and not (home / "shared").is_symlink()


def test_a_home_that_is_a_symlink_is_refused(tmp_path):
    layout = accounts.Layout(str(tmp_path / "data"))
    layout.prepare(accounts.HUB_USER, None)
    os.symlink(tmp_path, tmp_path / "data" / "homes" / "mallory")
    with pytest.raises(OSError):
        accounts.prepare_home(layout, "mallory", accounts.Identity(None, None, (), 0o022, False))


def test_a_stale_shared_link_is_replaced(tmp_path):
    layout = accounts.Layout(str(tmp_path / "data"))
    layout.prepare(accounts.HUB_USER, None)
    (tmp_path / "data" / "homes" / "bob").mkdir()
    os.symlink("/somewhere/else", tmp_path / "data" / "homes" / "bob" / "shared")
    accounts.prepare_home(layout, "bob", accounts.Identity(None, None, (), 0o022, False))
    assert os.readlink(tmp_path / "data" / "homes" / "bob" / "shared") == layout.shared


def test_the_runtime_view_covers_only_directories_others_cannot_enter(tmp_path):
    private = tmp_path / "private"
    (private / "python" / "bin").mkdir(parents=True)
    (private / "other").mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(private, 0o700)
    view = dict(accounts.runtime_view([str(private / "python" / "bin"), "/usr/bin/env"]).covers)
    assert view[str(private)] == ("python",)  # "other" stays hidden
    assert not any(d.startswith("/usr") for d in view)
    os.chmod(private, 0o711)
    assert str(private) not in dict(accounts.runtime_view([str(private / "python" / "bin")]).covers)


# -- start-up checks -------------------------------------------------------------------------------------

def check(config):
    from jupyterhub_ext.local import LocalProfilesSpawner

    LocalProfilesSpawner.check_config(config)


def test_the_shipped_configuration_passes_its_start_up_check(data_dir):
    check(local_config(data_dir, course_source=str(COURSE)))
    assert (data_dir / "homes").is_dir() and (data_dir / "shared").is_dir()


@pytest.mark.parametrize("settings, key, message", [
    ({"catalog_file": "", "profiles": [{"slug": "x", "display_name": "X", "hardware": {"kind": "gpu", "gpus": 0}}]},
     "LocalProfilesSpawner.profiles[0].hardware.gpus", "positive"),
    ({"catalog_file": "", "profiles": [{"slug": "x", "display_name": "X", "hardware": {"kind": "cpu"},
                                        "kubespawner_override": {"start_timeot": 5}}]},
     "LocalProfilesSpawner.profiles[0].kubespawner_override.start_timeot", "did you mean 'start_timeout'"),
    ({"catalog_file": "", "profiles": [{"slug": "x", "display_name": "X", "hardware": {"kind": "cpu"},
                                        "kubespawner_override": {"start_timeout": "soon"}}]},
     "LocalProfilesSpawner.profiles[0].kubespawner_override.start_timeout", "not a valid value"),
    ({"course_source": "/nonexistent/course"}, "LocalProfilesSpawner.course_source", "not a directory"),
    ({"home_subpath_template": "homes/all"}, "LocalProfilesSpawner.home_subpath_template", "same directory"),
    ({"cmd": ["no-such-jupyterhub-singleuser"]}, "LocalProfilesSpawner.cmd", "not an installed command"),
])
def test_mistakes_stop_the_hub_naming_the_key(data_dir, settings, key, message):
    with pytest.raises(ConfigError) as info:
        check(local_config(data_dir, **settings))
    assert info.value.path == key and message in info.value.message


@needs_root
def test_per_user_mode_refuses_a_shared_gid_that_is_an_existing_group(data_dir):
    existing = next(g.gr_gid for g in grp.getgrall() if g.gr_gid > 0)
    with pytest.raises(ConfigError, match="existing group"):
        check(local_config(data_dir, run_servers_as="per-user", uid_base=existing))


@needs_root
def test_per_user_mode_refuses_a_course_the_servers_cannot_read(data_dir, tmp_path, course):
    os.chmod(course, 0o700)
    with pytest.raises(ConfigError) as info:
        check(local_config(data_dir, run_servers_as="per-user", uid_base=61000, course_source=str(course)))
    assert info.value.path == "LocalProfilesSpawner.run_servers_as" and str(course) in info.value.message


@needs_root
def test_without_mount_namespaces_a_private_runtime_is_refused_at_start_up(data_dir, tmp_path, course,
                                                                          monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.move(str(course), private / "course")  # only reachable through a cover of ``private``
    check(local_config(data_dir, run_servers_as="per-user", uid_base=61000, course_source=str(private / "course")))
    monkeypatch.setattr(accounts, "_CLONE_NEWNS", 0x7FFFFFFF)  # unshare() now fails, as without CAP_SYS_ADMIN
    with pytest.raises(ConfigError, match="mount namespaces"):
        check(local_config(data_dir, run_servers_as="per-user", uid_base=61000,
                           course_source=str(private / "course")))


@pytest.mark.skipif(is_root, reason="checks the refusal a normal user gets")
def test_per_user_mode_needs_root(data_dir):
    with pytest.raises(ConfigError, match="needs the hub to run as root"):
        check(local_config(data_dir, run_servers_as="per-user"))


def test_z2jh_setup_wires_the_local_spawner_and_exits_on_a_mistake(data_dir):
    import jupyterhub_ext.z2jh
    from jupyterhub_ext.local import LocalProfilesSpawner

    c = local_config(data_dir)
    jupyterhub_ext.z2jh.setup(c, spawner="local")
    assert c.JupyterHub.spawner_class is LocalProfilesSpawner
    c.LocalProfilesSpawner.course_source = "/nonexistent"
    with pytest.raises(SystemExit, match="LocalProfilesSpawner.course_source"):
        jupyterhub_ext.z2jh.setup(c, spawner="local")


async def test_the_course_list_with_directories_seeds_each_users_courses_in_their_folders(data_dir, tmp_path, course):
    """The local run reads the same course list as Kubernetes, with directories as sources."""
    stats = tmp_path / "stats200"
    (stats / "sets").mkdir(parents=True)
    (stats / "intro.md").write_text("# Stats 200\n")
    (stats / "sets" / "one.ipynb").write_text("{}\n")
    os.chmod(stats, 0o755)
    courses = [{"name": "cs101", "directory": str(course), "groups": ["cs101"]},
               {"name": "stats200", "directory": str(stats), "groups": ["stats200"], "on_deleted": "respect"}]
    config = local_config(data_dir, courses=courses, run_servers_as="hub-user")
    both = await start_and_report(make_spawner(config, "both", groups=("cs101", "stats200")), tmp_path)
    assert {"cs101", "stats200"} <= set(both["listing"])
    homes = data_dir / "homes"
    assert (homes / "both" / "cs101" / "week1" / "01-weather-with-python.ipynb").exists()
    assert (homes / "both" / "stats200" / "intro.md").read_text() == "# Stats 200\n"
    one = await start_and_report(make_spawner(config, "one", groups=("stats200",)), tmp_path)
    assert "stats200" in one["listing"] and "cs101" not in one["listing"]
    none = await start_and_report(make_spawner(config, "none"), tmp_path)
    assert not {"cs101", "stats200"} & set(none["listing"])
    # a deleted file of the 'respect' course stays deleted; the update of the other course reaches the user
    os.unlink(homes / "both" / "stats200" / "intro.md")
    (course / "week1" / "new.md").write_text("new\n")
    await start_and_report(make_spawner(config, "both", groups=("cs101", "stats200")), tmp_path)
    assert not (homes / "both" / "stats200" / "intro.md").exists()
    assert (homes / "both" / "cs101" / "week1" / "new.md").read_text() == "new\n"


def test_a_course_source_the_local_run_cannot_deliver_stops_it_naming_the_key(data_dir):
    config = local_config(data_dir, courses=[{"name": "cs101", "image": "ghcr.io/uni/cs101:1"}])
    with pytest.raises(ConfigError) as e:
        make_spawner(config).check_local_config()
    assert e.value.path == "LocalProfilesSpawner.courses[0].image"
    assert "directory" in e.value.message
