"""Downloads and archives: what a script fetches from the internet, verified.

Holds RemoteFile (a file a script needs: name, mirrors, size, checksums), fetch and fetch_all
(download into a folder, verified, atomic, continued after a cut connection; offline, one line
naming every missing file and where to put it), verification_problem, and extract_archive (a
.tgz/.tar/.zip that may not write outside its folder).
"""

import contextlib
import errno
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from filelock import FileLock, Timeout

from book_support.plumbing import Progress, UserError, disk_full, replace_file

DOWNLOAD_TIMEOUT_SECONDS = 30
CHUNK_BYTES = 1 << 16
DOWNLOAD_ATTEMPTS = 3  # a connection cut mid-file is continued this many times in all

# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteFile:
    """A file a script needs, where to get it and how to recognise the right bytes."""
    name: str
    urls: tuple
    size: int = None
    md5: str = None
    sha256: str = None

    def describe_source(self):
        return self.urls[0] if self.urls else "its publisher"


def _digests(remote):
    wanted = {}
    if remote.md5:
        wanted["md5"] = remote.md5.lower()
    if remote.sha256:
        wanted["sha256"] = remote.sha256.lower()
    return wanted


def verification_problem(path, remote):
    """Why the file at `path` is not `remote` (a short phrase), or None when it is."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"{size:,} bytes instead of {remote.size:,}"
    wanted = _digests(remote)
    hashers = {name: hashlib.new(name) for name in wanted}
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            for hasher in hashers.values():
                hasher.update(chunk)
    for name, hasher in hashers.items():
        if hasher.hexdigest() != wanted[name]:
            return f"{name} {hasher.hexdigest()} instead of {wanted[name]}"
    return None


def fetch(remote, directory, quiet=False):
    """Return the path of `remote` in `directory`, downloading and verifying it if absent.

    A file already there is the user's and is used as it is (the script's reader checks its
    structure), never replaced. A download goes to a hidden `.NAME.part` file that is renamed
    only once its size and checksum are right and removed when its bytes are wrong, so no file
    looks complete before it is. A connection cut mid-file, or a run killed or interrupted, is
    continued where it stopped (HTTP Range, or from the start where the server does not allow
    that), in this run or the next.
    Mirrors are tried in order; when all fail, a UserError says which file to put where.
    """
    return fetch_all([remote], directory, quiet)[0]


def fetch_all(remotes, directory, quiet=False, by_hand=None):
    """The paths of `remotes` in `directory`, each fetched as `fetch` does. Every missing file
    is tried before any error, and when some could not be downloaded, one UserError names them
    all and where to put them: offline, one run tells the reader every file to fetch, not one
    file a run. A source's host that could not be reached is not tried again in the run.

    `by_hand` is (why, [RemoteFile]): files the caller needs in `directory` that are never
    downloaded (no checksum is published); they are named in the same line, after `why`.
    """
    directory, remotes = Path(directory), list(remotes)
    targets = [directory / remote.name for remote in remotes]
    missing = [(remote, target) for remote, target in zip(remotes, targets)
               if not target.exists()]
    if missing:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create {directory}: {error.strerror}") from None
    unreachable, failed = {}, {}
    for remote, target in missing:
        problem = _download_from_mirrors(remote, target, quiet, unreachable)
        if problem:
            failed[remote] = problem
    if failed or by_hand:
        raise UserError(_put_these(directory, failed, by_hand))
    return targets


def _download_from_mirrors(remote, target, quiet, unreachable):
    """None once `remote` is at `target`, else why not (one phrase for all its mirrors).
    `unreachable` maps the hosts that could not be reached in this run to why."""
    failures = {}
    for url in remote.urls:
        host = urllib.parse.urlsplit(url).netloc
        problem = (unreachable[host] if host in unreachable
                   else _download_one(url, remote, target, quiet))
        if problem is None:
            return None
        if isinstance(problem, _Unreachable):
            unreachable[host] = problem
        failures[url] = problem
    if len(set(failures.values())) == 1:  # offline: one reason, said once
        return f"{len(failures)} source(s): {next(iter(failures.values()))}"
    return "; ".join(f"{url}: {problem}" for url, problem in failures.items()) or "no source"


def _put_these(directory, failed, by_hand):
    """The one line that says why files are missing and which to put in `directory`, from
    where. `failed` maps each file that could not be downloaded to why."""
    why, hand_made = by_hand or (None, [])
    if not hand_made and len(failed) == 1:
        (remote, problem), = failed.items()
        return (f"could not download {remote.name} ({problem}); put the file at "
                f"{directory / remote.name} (from {remote.describe_source()})")
    reasons = [why] if why else []
    if failed:
        problems = set(failed.values())
        problem = (problems.pop() if len(problems) == 1 else
                   "; ".join(f"{remote.name}: {problem}" for remote, problem in failed.items()))
        what = next(iter(failed)).name if len(failed) == 1 else f"{len(failed)} files"
        reasons.append(f"could not download {what} ({problem})")
    missing = [*hand_made, *failed]
    these = ("them" if not hand_made else "it" if len(missing) == 1
             else f"these {len(missing)} files")
    return (f"{', and '.join(reasons)}; put {these} in {directory}: "
            f"{_names_and_sources(missing)}")


def _names_and_sources(remotes):
    """`a, b (from https://host/folder/), c (from https://other/c)`: files from one folder
    share it, so the line stays short."""
    groups = {}
    for remote in remotes:
        source = remote.describe_source()
        folder = source[:-len(remote.name)] if source.endswith("/" + remote.name) else source
        groups.setdefault(folder, []).append(remote)
    return ", ".join(
        f"{', '.join(remote.name for remote in group)} (from "
        f"{group[0].describe_source() if len(group) == 1 else folder})"
        for folder, group in groups.items())


class _Unreachable(str):
    """Why a source's host could not be reached (no HTTP answer): a problem that the other
    files from that host would meet too."""


def _download_one(url, remote, target, quiet):
    """Download `url` to `target`; return None on success or why it failed. The bytes gather in
    the hidden `.NAME.part` beside it, which a later run continues from when this one is cut
    off or killed; bytes that prove wrong are removed."""
    partial = target.parent / f".{remote.name}.part"
    for leftover in target.parent.glob(f".{remote.name}.*.part"):  # earlier versions' names
        leftover.unlink(missing_ok=True)
    with _held(partial, remote):
        if remote.size is not None and partial.stat().st_size > remote.size:
            partial.write_bytes(b"")  # not a beginning of this file
        try:
            for _ in range(DOWNLOAD_ATTEMPTS):
                problem, cut_short = _stream_into(url, remote, partial, quiet)
                if not cut_short:
                    break
        except UserError:  # the disk is full: no partial file left taking room
            partial.unlink(missing_ok=True)
            raise
        if problem is None:
            problem = verification_problem(partial, remote)
            if problem is None:
                replace_file(partial, target)
                return None
            partial.unlink()  # the whole file, and wrong: nothing to continue from
        elif partial.stat().st_size in (0, *([] if remote.size is None else [remote.size + 1])):
            partial.unlink()  # nothing yet, or more than the file
        return problem


@contextlib.contextmanager
def _held(partial, remote):
    """Hold `partial` for this process, creating it: two runs fetching one file at once would
    write into each other. The lock (filelock, on a file beside it) dies with a killed run, and
    its file goes when the download ends."""
    lock_path = partial.with_name(partial.name + ".lock")
    held = FileLock(lock_path, timeout=0)
    try:
        held.acquire()
    except Timeout:
        raise UserError(f"another run is downloading {remote.name} into {partial.parent}; "
                        f"let it finish, then run again") from None
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666))  # umask applies
        yield
    finally:
        held.release()
        with contextlib.suppress(OSError):  # filelock 4 removes it itself
            lock_path.unlink()


def _stream_into(url, remote, partial, quiet):
    """Add what `url` sends to `partial`, asking only for the rest when it already holds some
    bytes. Returns (why it failed or None, whether it was cut short and worth continuing)."""
    offset = partial.stat().st_size
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            content_range = response.headers.get("Content-Range", "")
            if not (response.status == 206 and content_range.startswith(f"bytes {offset}-")):
                offset = 0  # the server sends the whole file
            announced = response.headers.get("Content-Length")
            sending = offset + int(announced) if announced else None
            with open(partial, "ab" if offset else "wb") as sink:
                received = offset + _copy_with_progress(response, sink, remote.size or sending,
                                                        offset, remote.name, quiet)
            if remote.size is not None and received > remote.size:
                return f"the server sent more than the file's {remote.size:,} bytes", False
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}", False
    except urllib.error.URLError as error:
        return _Unreachable(getattr(error.reason, "strerror", None) or error.reason), False
    except (HTTPException, OSError) as error:
        if disk_full(error):
            raise UserError(f"the disk is full: cannot write {remote.name} into "
                            f"{partial.parent} ({error.strerror}); make room there, then run "
                            f"again") from None
        if getattr(error, "errno", None) == errno.EROFS:
            raise UserError(f"cannot write {remote.name} into {partial.parent}: the disk is "
                            f"read-only") from None
        return f"connection lost ({type(error).__name__})", True
    if sending is not None and received < sending:
        return f"got {received:,} of {sending:,} bytes", True
    return None, False  # all the server had: whether it is the right file is checked next


def _copy_with_progress(response, sink, expected, offset, name, quiet):
    unit, scale = (" MB", 1e6) if (expected or 0) >= 1e6 else (" kB", 1e3)
    progress = None if quiet else Progress(expected, f"downloading {name}", unit=unit,
                                           scale=scale, initial=offset)
    copied = 0
    # A known size caps what is written: a mirror that sends without end fills no disk.
    room = None if expected is None else expected - offset + 1
    for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
        if room is not None:
            chunk = chunk[:max(room - copied, 0)]
        sink.write(chunk)
        copied += len(chunk)
        if room is not None and copied >= room:
            break
        if progress:
            progress.update(len(chunk))
    if progress:
        progress.close()
    return copied


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------

def _inside(directory, member_name):
    resolved = (directory / member_name).resolve()
    return resolved == directory or directory in resolved.parents


def extract_archive(archive, directory, largest_member=None, largest_total=None):
    """Extract a .tgz/.tar/.zip into `directory`, refusing the whole archive if any member
    would land outside it (absolute paths, `..`, links that point out, device files), if a
    member or all of them together are larger than the caller knows its contents to be, or
    larger than the free space. Sizes come from the headers, before anything is written."""
    archive, directory = Path(archive), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for name in bundle.namelist():
                    if not _inside(root, name):
                        raise UserError(f"{archive} has a member outside the folder: {name}")
                # zipfile stops each member at its header's size: the check holds
                _check_sizes(archive, root, {info.filename: info.file_size
                                             for info in bundle.infolist()},
                             largest_member, largest_total)
                _extracting(archive, lambda: bundle.extractall(root))
            return
        with tarfile.open(archive) as bundle:
            members = bundle.getmembers()
            for member in members:
                # A symbolic link points from its own folder; a hard link names a member
                # from the archive's root.
                target = (Path(member.name).parent / member.linkname if member.issym()
                          else member.linkname)
                bad_link = (member.issym() or member.islnk()) and not _inside(root, target)
                if (not _inside(root, member.name) or bad_link
                        or member.isdev() or member.isfifo()):
                    raise UserError(f"{archive} has an unsafe member: {member.name}")
            _check_sizes(archive, root, {member.name: member.size for member in members},
                         largest_member, largest_total)
            _extracting(archive, lambda: bundle.extractall(root, filter="data"))
    except tarfile.FilterError as error:  # what the check above missed, the filter refuses
        raise UserError(f"{archive} has an unsafe member: {error.tarinfo.name}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"{archive} is not a readable archive ({error})") from None


def _check_sizes(archive, root, sizes, largest_member, largest_total):
    name, size = max(sizes.items(), key=lambda item: item[1], default=(None, 0))
    if largest_member is not None and size > largest_member:
        raise UserError(f"{archive} is not the expected archive: its member {name} would be "
                        f"{size:,} bytes, more than the {largest_member:,} it can be")
    total = sum(sizes.values())
    if largest_total is not None and total > largest_total:
        raise UserError(f"{archive} is not the expected archive: it would extract to "
                        f"{total:,} bytes, more than the {largest_total:,} it can be")
    free = shutil.disk_usage(root).free
    if total > free:
        raise UserError(f"the disk is full: {archive} needs {total:,} bytes in {root}, which "
                        f"has {free:,} free; make room, then run again")


def _extracting(archive, extract):
    try:
        extract()
    except OSError as error:
        if not disk_full(error):
            raise
        raise UserError(f"the disk is full: {archive} could not be extracted "
                        f"({error.strerror}); make room, then run again") from None
