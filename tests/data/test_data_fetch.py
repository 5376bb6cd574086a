"""fetch_dataset / url sources against a loopback HTTP server serving a real tiny h5ad."""

from __future__ import annotations

import gc
import hashlib
import logging
from pathlib import Path

import pytest

from scfm_bench.config.schemas import DatasetEntry, FieldMap
from scfm_bench.data import fetch_dataset, load_dataset
from scfm_bench.exceptions import ChecksumError, DataError

FIELDS = FieldMap(label="cell_type", batch="batch", ontology_id="cell_type_ontology_term_id")


@pytest.fixture
def served(http_server, tiny_adata, tmp_path):
    """URL of a tiny h5ad on the loopback server, and its bytes."""
    root, base = http_server
    tiny_adata().write_h5ad(root / "tiny.h5ad")
    return f"{base}/tiny.h5ad", (root / "tiny.h5ad").read_bytes()


def url_entry(url: str, sha256: str | None = None) -> DatasetEntry:
    return DatasetEntry(source="url", url=url, filename="tiny.h5ad", sha256=sha256, fields=FIELDS)


def test_download_then_load_records_sha256(served, settings, tmp_path):
    url, payload = served
    digest = hashlib.sha256(payload).hexdigest()
    ds = load_dataset("tiny", url_entry(url), settings, suite_root=tmp_path)
    local = settings.datasets_dir / "tiny.h5ad"
    assert local.read_bytes() == payload
    assert ds.sha256 == digest
    assert (settings.datasets_dir / "tiny.h5ad.sha256").read_text().split()[0] == digest
    assert ds.adata.n_obs == 60
    # a second load uses the verified local copy and reports the same hash
    assert load_dataset("tiny", url_entry(url), settings, suite_root=tmp_path).sha256 == digest


def test_pinned_sha256_verifies(served, settings):
    url, payload = served
    path = fetch_dataset("tiny", url_entry(url, hashlib.sha256(payload).hexdigest()), settings)
    assert path.read_bytes() == payload


def test_wrong_pinned_sha256_is_refused_and_nothing_is_left(served, settings):
    url, payload = served
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        fetch_dataset("tiny", url_entry(url, wrong), settings)
    msg = str(err.value)
    assert "'tiny'" in msg and wrong in msg and hashlib.sha256(payload).hexdigest() in msg
    assert "Fix:" in msg and "datasets.yaml" in msg
    assert not settings.datasets_dir.exists() or list(settings.datasets_dir.iterdir()) == []


def test_truncated_cache_is_detected_and_fetched_again(served, settings, tmp_path, caplog):
    url, payload = served
    load_dataset("tiny", url_entry(url), settings, suite_root=tmp_path)
    local = settings.datasets_dir / "tiny.h5ad"
    local.write_bytes(payload[: len(payload) // 2])
    with caplog.at_level(logging.WARNING, logger="scfm_bench.data.fetch"):
        ds = load_dataset("tiny", url_entry(url), settings, suite_root=tmp_path)
    assert "truncated or modified" in caplog.text
    assert local.read_bytes() == payload
    assert ds.sha256 == hashlib.sha256(payload).hexdigest()


def test_changed_upstream_file_is_refused_against_recorded_hash(served, http_server, settings, tmp_path):
    url, payload = served
    fetch_dataset("tiny", url_entry(url), settings)
    (http_server[0] / "tiny.h5ad").write_bytes(payload + b"changed")
    (settings.datasets_dir / "tiny.h5ad").write_bytes(payload[:100])  # force a re-fetch
    with pytest.raises(ChecksumError, match=r"recorded at the first fetch.*delete .*tiny\.h5ad\.sha256"):
        fetch_dataset("tiny", url_entry(url), settings)
    assert not (settings.datasets_dir / "tiny.h5ad").exists()


# pooch's HTTPDownloader does not close the response of a failed request; collect it here so the
# resulting ResourceWarning is raised (and ignored) inside this test rather than a later one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_http_404_names_the_url(http_server, settings):
    url = f"{http_server[1]}/missing.h5ad"
    with pytest.raises(DataError, match="download of .*missing.h5ad failed") as err:
        fetch_dataset("tiny", url_entry(url), settings)
    gc.collect()
    assert url in str(err.value) and "404" in str(err.value)
    assert not settings.datasets_dir.exists() or list(settings.datasets_dir.iterdir()) == []


def test_file_placed_by_hand_is_adopted(tiny_adata, settings):
    settings.datasets_dir.mkdir(parents=True)
    tiny_adata().write_h5ad(settings.datasets_dir / "tiny.h5ad")
    path = fetch_dataset("tiny", url_entry("http://127.0.0.1:9/never-contacted.h5ad"), settings)
    assert Path(str(path) + ".sha256").is_file()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_member_is_unpacked_once(http_server, tiny_adata, settings, tmp_path, kind, caplog):
    """GEARS' Dataverse files are archives holding <name>/perturb_processed.h5ad (served here from loopback)."""
    import tarfile
    import zipfile

    root, base = http_server
    h5ad = tmp_path / "perturb_processed.h5ad"
    tiny_adata().write_h5ad(h5ad)
    archive = root / "datafile"  # no extension, like Dataverse's api/access URLs
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(h5ad, "norman/perturb_processed.h5ad")
    else:  # tar members often carry a leading ./ (tar -czf x.tgz ./norman); still the declared path
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(h5ad, "./norman/perturb_processed.h5ad")
    entry = DatasetEntry(source="url", url=f"{base}/datafile", filename="norman.h5ad", member="norman/perturb_processed.h5ad",
                         fields=FIELDS)
    path = fetch_dataset("norman", entry, settings)
    assert path == settings.datasets_dir / "norman.h5ad" and path.read_bytes() == h5ad.read_bytes()
    ds = load_dataset("norman", entry, settings, suite_root=tmp_path)
    assert ds.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()  # records name the upstream bytes
    with caplog.at_level(logging.INFO, logger="scfm_bench.data.fetch"):
        fetch_dataset("norman", entry, settings)
    assert "unpacked" not in caplog.text  # already unpacked from this archive
    path.unlink()
    assert fetch_dataset("norman", entry, settings).read_bytes() == h5ad.read_bytes()  # unpacked again, not downloaded

    # the same file name in another folder is another dataset: refused, naming the file that was not used
    for member in ("adamson/perturb_processed.h5ad", "perturb_processed.h5ad"):
        other = entry.model_copy(update={"member": member, "filename": "other.h5ad"})
        with pytest.raises(DataError, match=f"has no member '{member}' .*norman/perturb_processed.h5ad has the same file name "
                                            "in another folder and is not used.*Fix: set `member`"):
            fetch_dataset("other", other, settings)
        assert not (settings.datasets_dir / "other.h5ad").exists()
    missing = entry.model_copy(update={"member": "nope.h5ad", "filename": "nope.h5ad"})
    with pytest.raises(DataError, match=r"has no member 'nope.h5ad' \(files: .*perturb_processed"):
        fetch_dataset("nope", missing, settings)
    assert not (settings.datasets_dir / "nope.h5ad").exists()


def test_unpacked_file_placed_by_hand_is_adopted(tiny_adata, settings):
    path = settings.datasets_dir / "norman.h5ad"
    path.parent.mkdir(parents=True)
    tiny_adata().write_h5ad(path)
    entry = DatasetEntry(source="url", url="http://127.0.0.1:9/unreachable", filename="norman.h5ad",
                         member="norman/perturb_processed.h5ad", fields=FIELDS)
    assert fetch_dataset("norman", entry, settings) == path  # no download attempted
