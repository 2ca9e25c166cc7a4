"""Background flushing: Writeback and Fsyncs get files to disk while the caller goes on, and report the
errors they met to the caller, never swallow them."""

from __future__ import annotations

import errno

import pytest

from dsm_assets import atomic


def test_fsyncs_waits_for_every_file_and_raises_the_first_error(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(atomic, "fsync_file", synced.append)
    paths = [tmp_path / f"{i}" for i in range(5)]
    with atomic.Fsyncs() as fsyncs:
        for p in paths:
            fsyncs.add(p)
        fsyncs.wait()
        assert synced == paths

    def failing(path):
        raise OSError(errno.EIO, "I/O error", str(path))

    monkeypatch.setattr(atomic, "fsync_file", failing)
    with atomic.Fsyncs() as fsyncs, pytest.raises(OSError, match="I/O error"):
        fsyncs.add(paths[0])
        fsyncs.wait()


def test_writeback_flushes_each_step_and_raises_its_error_on_close(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"")
    flushed = []
    monkeypatch.setattr(atomic.os, "fdatasync", flushed.append)
    with atomic.Writeback(path, step=10) as wb:
        for size in (5, 10, 12, 25):
            wb.wrote(size)
            if wb._thread is not None:  # a flush still running skips the step: let each finish
                wb._thread.join()
    assert len(flushed) == 2  # at 10 and 25 bytes

    def failing(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(atomic.os, "fdatasync", failing)
    wb = atomic.Writeback(path, step=1)
    wb.wrote(1)
    with pytest.raises(OSError, match="I/O error"):
        wb.close()
