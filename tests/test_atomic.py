import os

import pytest

from fmtbench.atomic import atomic_path, read_json, write_json


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_written_file_gets_the_mode_of_a_plain_open_not_mkstemps_0600(tmp_path, umask_027):
    write_json(tmp_path / "result.json", {"a": 1})
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"old": True})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("{half")
            raise RuntimeError("interrupted")
    assert read_json(path) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_full_disk_names_the_file_being_written_and_keeps_the_old_one(tmp_path):
    import errno
    path = tmp_path / "result.json"
    write_json(path, {"old": True})
    with pytest.raises(OSError, match=rf"No space left on device while writing {path}") as error:
        with atomic_path(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert error.value.errno == errno.ENOSPC
    assert read_json(path) == {"old": True} and [p.name for p in tmp_path.iterdir()] == ["result.json"]
