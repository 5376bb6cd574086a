"""Download catalogue files with pooch into the data directory and keep them verified by sha256.

Every fetched file has a sidecar ``<filename>.sha256`` holding the hash of the bytes in place. The
expected hash is ``entry.sha256`` when the catalogue pins one, else the sidecar written by the first
fetch, so a file truncated or modified later is caught on the next load, deleted and fetched again
once. Downloads land in a temporary file beside the target and are moved into place only after they
verify, so a failed or mismatching download never leaves a file behind.
"""

from __future__ import annotations

import ftplib
import importlib.util
import logging
from pathlib import Path
from urllib.parse import urlparse

from scfm_bench.atomic import atomic_path, atomic_write_text
from scfm_bench.config.schemas import DatasetEntry
from scfm_bench.data.hashing import file_sha256
from scfm_bench.exceptions import ChecksumError, ConfigError, DataError
from scfm_bench.settings import Settings

logger = logging.getLogger(__name__)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_recorded_sha256(path: Path) -> str | None:
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    parts = sidecar.read_text().split()  # "<hex>  <filename>", as sha256sum writes it
    return parts[0].lower() if parts else None


def _write_recorded_sha256(path: Path, digest: str) -> None:
    atomic_write_text(sidecar_path(path), f"{digest}  {path.name}\n")


def fetch_dataset(name: str, entry: DatasetEntry, settings: Settings) -> Path:
    """Return the verified local copy of a url dataset, downloading it when absent or corrupt."""
    return fetch_verified(name, entry, settings)[0]


def fetch_verified(name: str, entry: DatasetEntry, settings: Settings) -> tuple[Path, str]:
    """Like fetch_dataset, also returning the file's sha256 (already computed while verifying). With
    ``entry.member`` the download is an archive (kept as ``<filename>.archive``, its sha256 is the one
    verified and returned) and ``member`` is unpacked from it as ``filename``; a ``filename`` placed by
    hand without the archive (an offline node) is adopted like any hand-placed file."""
    if entry.source != "url":
        raise ConfigError(f"dataset {name!r}: fetch_dataset needs source 'url', not {entry.source!r}.")
    assert entry.url is not None and entry.filename is not None  # guaranteed by DatasetEntry
    if Path(entry.filename).name != entry.filename:
        raise ConfigError(f"dataset {name!r}: filename {entry.filename!r} must be a plain file name, without folders.")
    if entry.member and not ((settings.datasets_dir / entry.filename).is_file()
                             and not (settings.datasets_dir / f"{entry.filename}.archive").is_file()):
        archive, digest = fetch_verified(name, entry.model_copy(update={"member": None, "filename": f"{entry.filename}.archive"}), settings)
        return _unpack(name, archive, entry.member, settings.datasets_dir / entry.filename, digest), digest
    path = settings.datasets_dir / entry.filename
    expected = entry.sha256.lower() if entry.sha256 else read_recorded_sha256(path)
    if not path.is_file():
        return _download(name, entry, path, expected)

    got = file_sha256(path)
    if expected is None:
        # Placed by hand (e.g. copied to an offline node): trust it and record its hash from now on.
        logger.info("dataset %r: %s has no recorded sha256; recording %s", name, path, got)
        _write_recorded_sha256(path, got)
        return path, got
    if got == expected:
        if read_recorded_sha256(path) != got:
            _write_recorded_sha256(path, got)
        return path, got
    logger.warning(
        "dataset %r: cached %s has sha256 %s but %s was expected (truncated or modified); deleting it and downloading it again",
        name,
        path,
        got,
        expected,
    )
    path.unlink()
    return _download(name, entry, path, expected)


def _download(name: str, entry: DatasetEntry, path: Path, expected: str | None) -> tuple[Path, str]:
    url = entry.url
    assert url is not None
    downloader = _downloader(name, url)
    logger.info("dataset %r: downloading %s to %s", name, url, path)
    # a failed, refused or interrupted download leaves nothing behind
    with atomic_path(path) as part:
        try:
            downloader(url, str(part), None)
        except (OSError, EOFError, ftplib.Error) as e:  # requests' errors are OSErrors
            raise DataError(
                f"dataset {name!r}: download of {url} failed ({type(e).__name__}: {e}). "
                f"Fix: check the URL in datasets.yaml and your network, or download the file yourself "
                f"and place it at {path}."
            ) from None
        got = file_sha256(part)
        if expected is not None and got != expected:
            where = "datasets.yaml" if entry.sha256 else f"the hash recorded at the first fetch ({sidecar_path(path)})"
            raise ChecksumError(
                f"dataset {name!r}: the file downloaded from {url} has sha256 {got}, but {where} expects "
                f"{expected}. The download was deleted. Fix: retry (the transfer may have been corrupted); if "
                f"the upstream file changed on purpose, update sha256 in datasets.yaml"
                + ("" if entry.sha256 else f" or delete {sidecar_path(path)} to accept the new file")
                + "."
            )
    _write_recorded_sha256(path, got)
    if expected is None:
        logger.info("dataset %r: recorded sha256 %s (pin it as sha256 in datasets.yaml)", name, got)
    return path, got


def _unpack(name: str, archive: Path, member: str, path: Path, digest: str) -> Path:
    """Unpack ``member`` of a zip or tar archive to ``path`` unless the copy there came from this very
    archive (its sidecar names the archive's sha256); written beside and moved into place."""
    import tarfile
    import zipfile

    stamp = f"{digest}:{member}".lower()  # sidecars are read back lower-cased
    if path.is_file() and read_recorded_sha256(path) == stamp:
        return path
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _copy_to(zf.open(_member(name, archive, member, zf.namelist())), path)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            _copy_to(tf.extractfile(_member(name, archive, member, [m.name for m in tf.getmembers() if m.isfile()])), path)
    else:
        raise DataError(f"dataset {name!r}: {archive} is neither a zip nor a tar archive, but datasets.yaml names a member "
                        f"({member!r}) to unpack from it. Fix: remove `member` if the URL serves the file itself.")
    _write_recorded_sha256(path, stamp)
    logger.info("dataset %r: unpacked %s from %s to %s", name, member, archive.name, path)
    return path


def _member(name: str, archive: Path, member: str, names: list[str]) -> str:
    """The entry whose path is exactly ``member`` (tar's leading ``./`` aside). A file with the same name in
    another folder is another dataset (GEARS zips hold ``<dataset>/perturb_processed.h5ad``), never a stand-in."""
    hit = next((n for n in names if n.removeprefix("./") == member.removeprefix("./")), None)
    if hit is not None:
        return hit
    same = [n for n in names if Path(n).name == Path(member).name]
    hint = f" {', '.join(same)} has the same file name in another folder and is not used." if same else ""
    raise DataError(f"dataset {name!r}: archive {archive} has no member {member!r} (files: {', '.join(names[:20])}).{hint} "
                    f"Fix: set `member` in datasets.yaml to the exact path of the file you mean.")


def _copy_to(src, path: Path) -> None:
    import shutil

    with atomic_path(path) as part, src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _downloader(name: str, url: str):
    import pooch

    progressbar = logger.isEnabledFor(logging.INFO) and importlib.util.find_spec("tqdm") is not None
    scheme = urlparse(url).scheme
    if scheme in ("http", "https"):
        return pooch.HTTPDownloader(progressbar=progressbar)
    if scheme == "ftp":
        return pooch.FTPDownloader(progressbar=progressbar)
    raise ConfigError(f"dataset {name!r}: url {url!r} must start with https://, http:// or ftp://.")
