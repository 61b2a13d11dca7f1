"""The S3 server fixture (tests/helpers/s3.py): a real endpoint, reached through the standard
AWS environment the way the lake reaches it."""

from __future__ import annotations

import os

import pytest

from tests.helpers.s3 import S3Bucket, S3Server


def test_a_bucket_is_reached_through_the_standard_aws_environment(s3_bucket: S3Bucket) -> None:
    from pyarrow import fs

    assert os.environ["AWS_ENDPOINT_URL"] == s3_bucket.server.endpoint_url
    filesystem, path = fs.FileSystem.from_uri(s3_bucket.url(""))
    assert path == s3_bucket.name
    assert filesystem.get_file_info(path).type == fs.FileType.Directory
    with filesystem.open_output_stream(f"{s3_bucket.name}/a/b.txt") as out:
        out.write(b"written")
    assert s3_bucket.keys() == ["a/b.txt"]


def test_each_test_has_an_empty_bucket_of_its_own(s3_bucket: S3Bucket) -> None:
    assert s3_bucket.keys() == []


def test_tests_using_the_server_are_marked_integration(
    s3_server: S3Server, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("integration") is not None
