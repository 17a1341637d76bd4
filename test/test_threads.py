"""icefall_lite.threads: PASSIVE OpenMP waiting when other processes keep the cores busy."""

import itertools

import pytest

from icefall_lite import threads

POLICY_AT_IMPORT = threads.os.environ.get("OMP_WAIT_POLICY")


@pytest.fixture
def no_policy(monkeypatch):
    # setenv first so that monkeypatch restores the variable's state even when the code under
    # test sets it (delenv of an absent variable records nothing).
    monkeypatch.setenv("OMP_WAIT_POLICY", "")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(threads, "_own_cpu_seconds", lambda: 0.0)


def fake_stat(monkeypatch, busy_jiffies_per_window: float, total_per_window: float = 200.0):
    """/proc/stat that advances by the given busy and total jiffies between two reads."""
    counter = itertools.count()

    def cpu_times():
        n = next(counter)
        return 1000.0 + n * busy_jiffies_per_window, 5000.0 + n * total_per_window

    monkeypatch.setattr(threads, "_cpu_times", cpu_times)


def test_busy_machine_gets_passive(no_policy, monkeypatch):
    fake_stat(monkeypatch, busy_jiffies_per_window=100.0)  # half of 2 cores: 1 core busy
    assert threads.other_busy_cores() == pytest.approx(1.0)
    assert threads.choose_omp_wait_policy().startswith("PASSIVE (other processes busy: 1.0")
    assert threads.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_idle_machine_keeps_the_default(no_policy, monkeypatch):
    fake_stat(monkeypatch, busy_jiffies_per_window=20.0)  # 0.2 cores
    assert threads.choose_omp_wait_policy().startswith("libgomp default")
    assert "OMP_WAIT_POLICY" not in threads.os.environ


def test_own_cpu_time_is_not_counted_as_others(no_policy, monkeypatch):
    fake_stat(monkeypatch, busy_jiffies_per_window=100.0)
    own = itertools.count(step=0.3)  # this process used 0.3 s of CPU in the 0.3 s window
    monkeypatch.setattr(threads, "_own_cpu_seconds", lambda: next(own))
    assert threads.other_busy_cores() == pytest.approx(0.0)


def test_users_choice_wins(no_policy, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    fake_stat(monkeypatch, busy_jiffies_per_window=200.0)
    assert threads.choose_omp_wait_policy() == "ACTIVE (set by the user)"
    assert threads.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_unreadable_proc_stat_keeps_the_default(no_policy, monkeypatch):
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    assert threads.other_busy_cores() is None
    assert "unknown" in threads.choose_omp_wait_policy()


def test_the_fixture_leaves_no_policy_behind():
    # Runs after the tests above (file order): none of them leaked PASSIVE into this process.
    assert threads.os.environ.get("OMP_WAIT_POLICY") == POLICY_AT_IMPORT


@pytest.mark.parametrize("switch, warned", [("1\n", True), ("0\n", False), (None, False)])
def test_autogroup_is_named_in_the_log_line(tmp_path, switch, warned):
    path = tmp_path / "sched_autogroup_enabled"
    if switch is not None:
        path.write_text(switch)
    note = threads.autogroup_note(str(path))
    assert ("sched_autogroup_enabled=1" in note) == warned
    assert (note == "") == (not warned)


STAT = "cpu  {user} {nice} 100 {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n"


@pytest.mark.parametrize("count_niced, busy", [(True, 600.0), (False, 100.0)])
def test_niced_time_counts_only_when_asked(tmp_path, count_niced, busy):
    stat = tmp_path / "stat"
    stat.write_text(STAT.format(user=0, nice=500, idle=400))
    assert threads._cpu_times(str(stat), count_niced) == (busy, 1000.0)


def test_niced_time_is_left_out_with_autogroup_off(tmp_path, monkeypatch):
    # Beside niced jobs, spinning threads are faster (329 vs 500 ms a step) and cost the niced
    # jobs little; with autogroup on, other sessions' niced jobs take an equal share: count them.
    stat = tmp_path / "stat"
    stat.write_text(STAT.format(user=0, nice=500, idle=400))
    for enabled, busy in ((False, 100.0), (True, 600.0)):
        monkeypatch.setattr(threads, "autogroup_enabled", lambda path=None, on=enabled: on)
        assert threads._cpu_times(str(stat)) == (busy, 1000.0)


def test_autogroup_switch_is_read(tmp_path):
    switch = tmp_path / "sched_autogroup_enabled"
    assert not threads.autogroup_enabled(str(switch))  # absent: off
    for text, enabled in (("1\n", True), ("0\n", False)):
        switch.write_text(text)
        assert threads.autogroup_enabled(str(switch)) == enabled
