"""Fixtures of the e2e suite: the rendered chart, the local target and the cluster target.

Every scenario that takes `target` runs twice: against the local process (always) and against
a cluster (only with E2E_KUBECONFIG; skipped otherwise, since these machines have none).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e import tools
from e2e.chart import Release, render
from e2e.cluster import Cluster, ClusterConfig, connect, install_target
from e2e.local import LocalInjector, started
from e2e.node import FIGURES
from e2e.target import Target
from tests.chart.helm import Helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(tools.helm())


@pytest.fixture(scope="session")
def release(helm: Helm) -> Release:
    """The chart rendered with e2e/values.yaml: what both modes run."""
    return render(helm)


@pytest.fixture(scope="session")
def local(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalInjector]:
    """The real service with the chart's arguments, shared by the local scenarios."""
    with started(release, tmp_path_factory.mktemp("injector")) as injector:
        yield injector


@pytest.fixture(scope="session")
def local_target(local: LocalInjector) -> Iterator[Target]:
    apiserver = local.apiserver()
    try:
        yield Target("local", apiserver, local)
    finally:
        apiserver.close()


@pytest.fixture(scope="session")
def cluster(helm: Helm, release: Release) -> Iterator[Cluster]:
    """The cluster of E2E_KUBECONFIG with the test namespaces; skipped without one."""
    config = ClusterConfig.from_env()
    if config is None:
        pytest.skip("cluster mode is off: set E2E_KUBECONFIG to run it (see e2e/README.md)")
    with connect(config, helm, release) as found:
        yield found


@pytest.fixture(scope="session")
def cluster_target(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The chart installed in the cluster; the same scenarios through its apiserver."""
    with install_target(cluster, tmp_path_factory.mktemp("cluster")) as target:
        yield target


@pytest.fixture(scope="session", params=["local", "cluster"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each scenario against the local process and against the cluster."""
    found: Target = request.getfixturevalue(f"{request.param}_target")
    return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The node scenarios' measured figures (start order, Job, reload times, memory under
    the burst, refused creations per disruption), where they ran."""
    if FIGURES:
        terminalreporter.section("node mode figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
