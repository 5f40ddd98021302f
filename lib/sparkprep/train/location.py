"""Where a sparkprep output lives: a pyarrow filesystem, the path on it, and the URL readers use."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from sparkprep.errors import InputError

_S3A = "s3a://"


@dataclass(frozen=True)
class OutputLocation:
    """An output root `<out>/`; `url` has a scheme because Petastorm and delta-rs need URLs.

    Args:
        fs: the filesystem the output is on.
        path: the root's path on `fs`, without a trailing slash.
        url: the root's URL, without a trailing slash.
    """

    fs: pafs.FileSystem
    path: str
    url: str

    @classmethod
    def of(cls, out_dir: str) -> OutputLocation:
        """A bare local path (absolute or relative) becomes `file://`; URIs go through pyarrow.

        `s3a://` (Hadoop's connector, as the ETL's output.path names it) is read as `s3://`.
        Endpoint and credentials come from the environment, as for any AWS client:
        AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or a role), AWS_REGION, and for an S3-compatible
        server AWS_ENDPOINT_URL (plus AWS_ALLOW_HTTP=true for delta-rs on a plain-http endpoint).

        Args:
            out_dir: the output root, a local path or a URI.
        """
        if "://" not in out_dir:
            # Not Path.as_uri(): it percent-quotes, and Petastorm uses urlparse().path unquoted.
            out_dir = "file://" + str(Path(out_dir).resolve())
        if out_dir.startswith(_S3A):
            out_dir = "s3://" + out_dir[len(_S3A):]
        fs, path = pafs.FileSystem.from_uri(out_dir)
        return cls(fs=fs, path=path.rstrip("/"), url=out_dir.rstrip("/"))

    def path_of(self, relative: str) -> str:
        """The path on `fs` of a file of the output.

        Args:
            relative: the file's path under the root.
        """
        return f"{self.path}/{relative}"

    def url_of(self, relative: str) -> str:
        """The URL of a file of the output.

        Args:
            relative: the file's path under the root.
        """
        return f"{self.url}/{relative}"

    def inside(self, relative: str, field: str) -> str:
        """A path the manifest names, checked to stay under the root: a manifest edited to point
        elsewhere (an absolute path, a URL, `..`) would make a reader read another dataset.

        Args:
            relative: the path, as the manifest gives it.
            field: the manifest's key that gives it, for the message.

        Raises:
            InputError: the path leaves the root.
        """
        normal = posixpath.normpath(relative)
        if "://" in relative or normal.startswith("/") or normal == ".." or normal.startswith("../"):
            raise InputError(f"{field} {relative!r} in the manifest of {self.url} points outside the dataset "
                             f"root: a sparkprep output names its files relative to it; restore the manifest "
                             f"or rerun the ETL job")
        return normal
