"""Operator experience of the CLI: worker names, one-line errors, docs of the API settings."""

from __future__ import annotations

from producer.cli.server import default_worker_name


def test_worker_name_uses_pid_without_a_gpu_index():
    assert default_worker_name("auto", host="box", pid=42) == "echodiary-box-42@box"
    assert default_worker_name("cuda", host="box", pid=42) == "echodiary-box-42@box"


def test_worker_name_uses_the_gpu_index_when_the_device_names_one():
    assert default_worker_name("cuda:1", host="box", pid=42) == "echodiary-box-gpu1@box"


def test_two_processes_get_two_names():
    assert default_worker_name("auto", host="box", pid=1) != default_worker_name("auto", host="box", pid=2)
