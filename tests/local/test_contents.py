"""The students' contents manager: nothing under the shared folder can be written through Jupyter."""

from __future__ import annotations

import os

import pytest
from tornado.web import HTTPError

from jupyterhub_ext.local.contents import ReadOnlyDirsContentsManager


@pytest.fixture
def cm(tmp_path):
    home, shared = tmp_path / "home", tmp_path / "shared"
    home.mkdir()
    (shared / "lecture").mkdir(parents=True)
    (shared / "lecture" / "notes.md").write_text("from the instructor\n")
    os.symlink(shared, home / "shared")
    (home / "mine.txt").write_text("mine\n")
    return ReadOnlyDirsContentsManager(root_dir=str(home), read_only_dirs=[str(shared)])


def text_model(content: str) -> dict:
    return {"type": "file", "format": "text", "content": content}


async def refused(awaitable):
    with pytest.raises(HTTPError) as info:
        await awaitable
    assert info.value.status_code == 403
    assert "read-only" in info.value.log_message
    return info.value


async def test_reads_work_and_say_read_only(cm):
    listing = await cm.get("")
    by_name = {c["name"]: c for c in listing["content"]}
    assert by_name["shared"]["writable"] is False and by_name["mine.txt"]["writable"] is True
    note = await cm.get("shared/lecture/notes.md")
    assert note["content"] == "from the instructor\n" and note["writable"] is False
    assert (await cm.get("shared/lecture"))["writable"] is False


async def test_every_kind_of_write_below_shared_is_refused(cm, tmp_path):
    shared = tmp_path / "shared"
    await refused(cm.save(text_model("x"), "shared/new.md"))
    await refused(cm.save(text_model("changed"), "shared/lecture/notes.md"))
    await refused(cm.save({"type": "directory"}, "shared/newdir"))
    await refused(cm.new_untitled("shared/lecture", type="notebook"))
    await refused(cm.copy("mine.txt", "shared/lecture"))
    await refused(cm.rename("mine.txt", "shared/mine.txt"))
    await refused(cm.rename("shared/lecture/notes.md", "stolen.md"))
    await refused(cm.delete("shared/lecture/notes.md"))
    await refused(cm.delete("shared/lecture"))
    await refused(cm.create_checkpoint("shared/lecture/notes.md"))
    assert sorted(os.listdir(shared)) == ["lecture"]
    assert sorted(os.listdir(shared / "lecture")) == ["notes.md"]
    assert (shared / "lecture" / "notes.md").read_text() == "from the instructor\n"


async def test_the_link_itself_and_detours_are_covered(cm, tmp_path):
    await refused(cm.delete("shared"))
    await refused(cm.rename("shared", "gone"))
    await refused(cm.save(text_model("x"), "week1/../shared/sneaky.md"))
    os.symlink(tmp_path / "shared" / "lecture", tmp_path / "home" / "my-link")  # a link the student made
    await refused(cm.save(text_model("x"), "my-link/notes.md"))
    assert os.path.islink(tmp_path / "home" / "shared")


async def test_the_home_stays_writable(cm, tmp_path):
    await cm.save(text_model("new\n"), "work.md")
    await cm.rename("work.md", "renamed.md")
    await cm.copy("shared/lecture/notes.md", "")  # copying out of the shared folder is fine
    assert (tmp_path / "home" / "notes.md").read_text() == "from the instructor\n"
    await cm.delete("renamed.md")
    assert not (tmp_path / "home" / "renamed.md").exists()
