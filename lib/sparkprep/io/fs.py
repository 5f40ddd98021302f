"""Small file operations through Hadoop's FileSystem, so every URI Spark can read works here too."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyspark.sql import SparkSession

from sparkprep.errors import InputError


def read_local(path: str, what: str) -> str:
    """A small local file the user named on the command line (stats.json, schema.yaml).

    Args:
        path: the file's local path.
        what: what it is, named in the error.
    """
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None


def qualify(path: str) -> str:
    """A bare local path becomes an absolute file:// URI; URIs are left alone.

    Args:
        path: a local path or a URI.
    """
    return path if "://" in path else Path(path).resolve().as_uri()


def _location(uri: str) -> tuple[str, str, str]:
    """(scheme, authority, path) of a qualified URI; a local path with its symlinks resolved, so a
    link cannot hide one directory inside another."""
    parts = urlparse(uri)
    path = unquote(parts.path) or "/"
    path = os.path.realpath(path) if parts.scheme == "file" else posixpath.normpath(path)
    return parts.scheme.lower(), parts.netloc.lower(), path


def relative_to(inner: str, outer: str) -> str | None:
    """The path of `inner` below `outer` ("" when they are the same place), None when `inner` is
    not inside `outer`. Both are qualified URIs (`HadoopFS.qualified`): the same scheme and
    authority, and `outer`'s path a prefix of `inner`'s on a `/` boundary, never a plain string
    prefix (/data/out2 is not inside /data/out).

    Args:
        inner: a qualified URI.
        outer: a qualified URI.
    """
    (scheme, authority, path), (o_scheme, o_authority, o_path) = _location(inner), _location(outer)
    if (scheme, authority) != (o_scheme, o_authority):
        return None
    if path == o_path:
        return ""
    prefix = o_path.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


class HadoopFS:
    """The Hadoop FileSystem behind a URI, with the few operations the pipeline needs."""

    def __init__(self, spark: SparkSession, uri: str) -> None:
        jvm = spark.sparkContext._jvm
        self._jvm = jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = jvm.org.apache.hadoop.fs.Path(uri).getFileSystem(self._conf)
        # .crc side files next to manifest.json only confuse readers of the output directory.
        self._fs.setWriteChecksum(False)

    def _path(self, uri: str):  # noqa: ANN202 - a py4j Path
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def qualified(self, uri: str) -> str:
        """`uri` with the authority Hadoop would give it: hdfs:///x is hdfs://namenode:8020/x when
        fs.defaultFS is hdfs://namenode:8020 (a URI of another scheme keeps what it says).

        Args:
            uri: a URI.
        """
        default = urlparse(self._conf.get("fs.defaultFS", "file:///"))
        parts = urlparse(uri)
        if parts.scheme == default.scheme and not parts.netloc and default.netloc:
            return parts._replace(netloc=default.netloc).geturl()
        return uri

    def exists(self, uri: str) -> bool:
        """Whether anything is at `uri`.

        Args:
            uri: a URI.
        """
        return bool(self._fs.exists(self._path(uri)))

    def is_empty_dir(self, uri: str) -> bool:
        """Whether `uri` is a directory with nothing in it.

        Args:
            uri: a URI.
        """
        return len(self._fs.listStatus(self._path(uri))) == 0

    def children(self, uri: str) -> list[str]:
        """The names of the entries directly under directory `uri` (none if it does not exist).

        Args:
            uri: a URI.
        """
        if not self.exists(uri):
            return []
        return [str(status.getPath().getName()) for status in self._fs.listStatus(self._path(uri))]

    def delete(self, uri: str) -> None:
        """Remove `uri`, recursively (nothing there: nothing done).

        Args:
            uri: a URI.
        """
        self._fs.delete(self._path(uri), True)

    def mkdirs(self, uri: str) -> None:
        """Create the directory `uri` and its parents.

        Args:
            uri: a URI.
        """
        self._fs.mkdirs(self._path(uri))

    def rename(self, src: str, dst: str) -> None:
        """Move `src` to `dst` (atomic where the filesystem's rename is).

        Args:
            src: a URI.
            dst: a URI that does not exist yet.
        """
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"could not rename {src} to {dst}")

    def write_text(self, uri: str, text: str) -> None:
        """Write via a temporary sibling and a rename, so readers never see a partial file.

        Args:
            uri: the file to write.
            text: its content (UTF-8).
        """
        tmp = f"{uri}.tmp"
        stream = self._fs.create(self._path(tmp), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        if self.exists(uri):
            self.delete(uri)
        self.rename(tmp, uri)

    def read_text(self, uri: str) -> str:
        """The content of the file at `uri` (UTF-8).

        Args:
            uri: a URI.
        """
        stream = self._fs.open(self._path(uri))
        try:
            return self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()

    def total_size(self, uri: str) -> int:
        """Bytes of every file under `uri`.

        Args:
            uri: a URI.
        """
        return int(self._fs.getContentSummary(self._path(uri)).getLength())
