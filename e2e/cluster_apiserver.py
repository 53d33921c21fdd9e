"""The cluster's apiserver as the scenarios' Apiserver: Pods, Deployments, templates and namespaces
created with kubectl, Pods a ReplicaSet created read back by their owners."""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Mapping

from e2e.kubectl import DENIED, Kubectl, applied, kubectl_warnings
from e2e.pods import (
    INJECT,
    Obj,
    random_suffix,
    replicaset_pod,
)
from e2e.target import Admission, Applied
from tests.k8s import assert_valid

POD_TIMEOUT = 120.0


class ClusterApiserver:
    """Creates Pods and updates the templates ConfigMap with kubectl: the apiserver runs the
    whole admission chain."""

    def __init__(
        self, kubectl: Kubectl, controllers: bool, native_sidecars: bool, templates: Obj
    ) -> None:
        self.kubectl = kubectl
        self.templates = templates
        """The templates ConfigMap as rendered (its name and namespace)."""
        self.controllers = controllers
        """False on a bare apiserver: no ReplicaSet controller, Pods are created as it would."""
        self.native_sidecars = native_sidecars
        self.run_id = random_suffix()
        self.counter = itertools.count()

    def unique(self, name: str) -> str:
        """Names are unique per run, so scenarios can create the same Pod again."""
        return f"{name}-{self.run_id}{next(self.counter)}"

    def admit(self, pod: Obj, namespace: str, *, dry_run: bool = False) -> Admission:
        pod = copy.deepcopy(pod)
        metadata = pod["metadata"]
        metadata["namespace"] = namespace
        if "name" in metadata:
            metadata["name"] = self.unique(metadata["name"])
        args = ["create", "--filename=-", "--output=json", f"--namespace={namespace}"]
        if dry_run:
            args.append("--dry-run=server")
        result = self.kubectl.run(*args, input=json.dumps(pod), check=False)
        warnings = kubectl_warnings(result.stderr)
        if result.returncode != 0:
            assert DENIED in result.stderr, f"kubectl create failed:\n{result.stderr}"
            return Admission(pod, False, None, result.stderr.strip(), warnings)
        stored: Obj = json.loads(result.stdout)
        assert_valid(stored)
        if dry_run and "name" in metadata:
            found = self.kubectl.run("get", "pod", metadata["name"], "-n", namespace, check=False)
            assert found.returncode != 0, "a dry-run created the Pod"
        return Admission(pod, True, stored, warnings=warnings)

    def update_templates(self, data: Mapping[str, str], *, dry_run: bool = False) -> Applied:
        metadata = self.templates["metadata"]
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
            "data": dict(data),
        }
        args = ["replace", "--filename=-", "--output=json"]
        if dry_run:
            args.append("--dry-run=server")
        result = self.kubectl.run(*args, input=json.dumps(configmap), check=False)
        warnings = kubectl_warnings(result.stderr)
        if result.returncode != 0:
            assert DENIED in result.stderr, f"kubectl replace failed:\n{result.stderr}"
            return Applied(False, result.stderr.strip(), warnings)
        return Applied(True, warnings=warnings)

    def label_namespace(self, name: str, value: str | None) -> Applied:
        label = f"{INJECT}-" if value is None else f"{INJECT}={value}"
        result = self.kubectl.run("label", "namespace", name, label, "--overwrite", check=False)
        return applied(result, "kubectl label")

    def create_namespace(self, namespace: Obj, *, dry_run: bool = False) -> Applied:
        args = ["create", "--filename=-", "--output=json"]
        if dry_run:
            args.append("--dry-run=server")
        result = self.kubectl.run(*args, input=json.dumps(namespace), check=False)
        return applied(result, "kubectl create namespace")

    def create_deployment(self, deployment: Obj, namespace: str) -> list[Admission]:
        if not self.controllers:
            replicas: int = deployment["spec"]["replicas"]
            return [self.admit(replicaset_pod(deployment), namespace) for _ in range(replicas)]
        deployment = copy.deepcopy(deployment)
        name = deployment["metadata"]["name"] = self.unique(deployment["metadata"]["name"])
        deployment["metadata"]["namespace"] = namespace
        args = ["create", "--filename=-", "--output=json", f"--namespace={namespace}"]
        created = json.loads(self.kubectl.run(*args, input=json.dumps(deployment)).stdout)
        replicaset = self._wait_for_replicaset(name, namespace, created["metadata"]["uid"])
        count: int = deployment["spec"]["replicas"]
        pods = self._wait_for_pods(replicaset, namespace, count)
        return [Admission(created_by(replicaset), True, pod) for pod in pods]

    def _wait_for_replicaset(self, deployment: str, namespace: str, uid: str) -> Obj:
        """The ReplicaSet the Deployment controller created for the Deployment `uid`."""
        deadline = time.monotonic() + POD_TIMEOUT
        while True:
            found = owned_by(self.kubectl.get("replicasets", f"--namespace={namespace}"), uid)
            if found:
                assert len(found) == 1, f"{deployment}: {len(found)} ReplicaSets"
                return found[0]
            assert time.monotonic() < deadline, f"{deployment} got no ReplicaSet"
            time.sleep(0.5)

    def _wait_for_pods(self, replicaset: Obj, namespace: str, count: int) -> list[Obj]:
        """The Pods the ReplicaSet controller created (each through the webhook) for it."""
        metadata = replicaset["metadata"]
        deadline = time.monotonic() + POD_TIMEOUT
        while True:
            pods = owned_by(self.kubectl.get("pods", f"--namespace={namespace}"), metadata["uid"])
            if len(pods) >= count:
                return pods[:count]
            if time.monotonic() >= deadline:
                # Why the controller could not create them (a denial, an unreachable webhook).
                events = self.kubectl.run(
                    "get", "events", f"--namespace={namespace}",
                    f"--field-selector=involvedObject.name={metadata['name']}",
                    check=False,
                )  # fmt: skip
                raise AssertionError(
                    f"{metadata['name']} created {len(pods)} of {count} Pods:\n{events.stdout}"
                )
            time.sleep(0.5)


def owned_by(listing: Obj, uid: str) -> list[Obj]:
    """The items of a `kubectl get` list whose controller is the object `uid`."""
    return [
        item
        for item in listing["items"]
        if any(
            ref["uid"] == uid and ref.get("controller")
            for ref in item["metadata"].get("ownerReferences", [])
        )
    ]


def created_by(replicaset: Obj) -> Obj:
    """The Pod the ReplicaSet controller submits for `replicaset`, before admission."""
    template = copy.deepcopy(replicaset["spec"]["template"])
    metadata = template["metadata"]
    replicaset_metadata = replicaset["metadata"]
    metadata["generateName"] = f"{replicaset_metadata['name']}-"
    metadata["namespace"] = replicaset_metadata["namespace"]
    metadata["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": replicaset_metadata["name"],
            "uid": replicaset_metadata["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}
