"""Streamed data (read a chunk at a time) under ``mpiexec``: each rank reads only its rows of every chunk, and N
ranks train exactly like one process (streamed, and resident where the batches are the same), resume exactly, and
refuse chunks they cannot share equally with one line. Every MPI job runs in a subprocess with a timeout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import streamed_target as target
from cli_helpers import assert_clean_error, xpnet
from test_distributed import mpiexec, needs_mpi, relative_error

from xpnet.checkpoint import load_checkpoint
from xpnet.data.chunks import ChunkReader
from xpnet.errors import ConfigError
from xpnet.serialization import load_model
from xpnet.trainer import check_chunk_shares

HERE = Path(__file__).resolve().parent


def one_process(epochs: int = target.EPOCHS) -> dict[int, dict[str, np.ndarray]]:
    """What the target's ``epochs`` mode writes after each epoch, from one process without MPI."""
    seen: dict[int, dict[str, np.ndarray]] = {}
    target.model().fit(target.streamed(), None, epochs, target.BATCH, seed=3, verbose=0,
                       callbacks=[lambda m, epoch, logs: seen.__setitem__(epoch, target.snapshot(m, logs))])
    return seen


def assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], where: object) -> None:
    assert relative_error(got["parameters"], want["parameters"]) < 1e-12, where
    assert abs(float(got["loss"]) - float(want["loss"])) < 1e-12 * float(want["loss"]), where


# ------------------------------------------------------------------------------------------ without MPI
def test_a_spill_reads_any_rows_of_a_chunk_alone_and_chunks_are_full_across_its_files(monkeypatch) -> None:
    data = target.streamed()
    assert data.chunk_lengths == [30, 30, 30, 30, 18]  # 138 kept samples, re-chunked over the spilled files
    whole = [data.chunk(k) for k in range(5)]
    x, y = target.resident()
    np.testing.assert_array_equal(np.concatenate([c for c, _ in whole]), x)
    np.testing.assert_array_equal(np.concatenate([labels for _, labels in whole]), y)
    monkeypatch.setattr(ChunkReader, "chunk", lambda *args: pytest.fail("read the whole chunk for a few rows"))
    rows = np.array([0, 7, 8, 29])
    part_x, part_y = data.chunk_rows(1, rows)
    np.testing.assert_array_equal(part_x, whole[1][0][rows])
    np.testing.assert_array_equal(part_y, whole[1][1][rows])


def test_chunks_the_ranks_cannot_share_are_one_error_naming_what_to_give() -> None:
    check_chunk_shares([30, 30, 18], 3)
    with pytest.raises(ConfigError, match="chunk 0 of the streamed training data holds 40 samples, which 3 ranks "
                                          r"cannot share equally: .* multiple of 3 .*--max-in-memory") as info:
        check_chunk_shares([40, 40, 18], 3)
    assert info.value.hint == "try --max-in-memory 39"


# --------------------------------------------------------------------------------------------- equality
@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_streaming_train_exactly_like_one_process(ranks: int, tmp_path: Path) -> None:
    result = mpiexec(ranks, HERE / "streamed_target.py", tmp_path, "epochs")
    assert result.returncode == 0, result.stderr
    expected = one_process()
    x, y = target.resident()
    resident = target.model()
    history = resident.fit(x, y, 1, target.ORDERED, shuffle=False, verbose=0)
    ordered = target.snapshot(resident, {"loss": history.history["loss"][-1]})
    for rank in range(ranks):
        for epoch in range(1, target.EPOCHS + 1):
            assert_close(dict(np.load(tmp_path / f"rank{rank}-epoch{epoch}.npz")), expected[epoch], (rank, epoch))
        assert_close(dict(np.load(tmp_path / f"rank{rank}-ordered.npz")), ordered, (rank, "ordered"))


@needs_mpi
def test_a_streamed_run_stopped_and_resumed_under_mpi_or_alone_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    (tmp_path / "mpi").mkdir()
    stopped = mpiexec(2, HERE / "streamed_target.py", tmp_path / "mpi", "stop")
    assert stopped.returncode == 0, stopped.stderr
    shutil.copytree(tmp_path / "mpi", tmp_path / "alone")
    found = load_checkpoint(next((tmp_path / "alone").glob("checkpoint-*.npz")), device="cpu")
    assert (found.position.epoch, found.position.batch) == (1, target.STOP_AT - 14)  # in its second chunk
    resumed = mpiexec(2, HERE / "streamed_target.py", tmp_path / "mpi", "resume")
    assert resumed.returncode == 0, resumed.stderr
    expected = one_process()[target.EPOCHS]
    for rank in range(2):
        assert_close(dict(np.load(tmp_path / "mpi" / f"rank{rank}-resumed.npz")), expected, rank)
    history = found.model.fit(target.streamed(), None, target.EPOCHS, target.BATCH, verbose=0, history=found.history,
                              position=found.position)
    assert_close(target.snapshot(found.model, {"loss": history.history["loss"][-1]}), expected, "one process")


# -------------------------------------------------------------------------------------------- the CLI
def _csv(path: Path, rows: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, rows)
    x = rng.standard_normal((rows, 4)) + labels[:, None]
    path.write_text("a,b,c,d,label\n" + "".join(f"{','.join(f'{v:.6f}' for v in row)},{label}\n"
                                                 for row, label in zip(x, labels, strict=True)))
    return path


@needs_mpi
def test_a_csv_file_larger_than_the_bound_trains_under_mpi_like_one_process(tmp_path: Path) -> None:
    train, test = _csv(tmp_path / "train.csv", 240, 0), _csv(tmp_path / "test.csv", 60, 1)

    def args(ranks: int, bound: int) -> list[str]:
        return ["-m", "xpnet", "train", "csv", str(train), "--label", "label", "--test-file", str(test),
                "--max-in-memory", str(bound), "--epochs", "2", "--batch-size", "12", "--hidden", "8",
                "--dtype", "float64", "--quiet", "--save", str(tmp_path / f"model-{ranks}-{bound}.npz")]

    refused = mpiexec(3, *args(3, 100))
    assert_clean_error(refused, "holds 100 samples, which 3 ranks cannot share equally", "--max-in-memory")
    assert not (tmp_path / "model-3-100.npz").exists()
    alone = xpnet(*args(1, 60)[2:], env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert alone.returncode == 0, alone.stderr
    ranks = mpiexec(2, *args(2, 60))
    assert ranks.returncode == 0, ranks.stderr
    want = load_model(tmp_path / "model-1-60.npz", device="cpu").get_parameters()
    assert relative_error(load_model(tmp_path / "model-2-60.npz", device="cpu").get_parameters(), want) < 1e-12
