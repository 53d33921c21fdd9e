"""The metadata lists of `outdated` and the audit, read from a real API server in protobuf: the
same names, namespaces, labels, annotations, owners and versions kubectl reads in JSON."""

from __future__ import annotations

import json
import time
from typing import Any

from lightkube.resources.core_v1 import Namespace, Pod

from e2e.cluster import Cluster
from e2e.pods import bare
from injector.ops.kube import MetadataList, connect

READ = ("name", "generateName", "namespace", "uid", "resourceVersion", "labels", "annotations",
        "ownerReferences")  # fmt: skip
"""The metadata fields the lists decode (the rest, managedFields first, are stepped over)."""


def _read(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: metadata[key] for key in READ if key in metadata}


def test_protobuf_lists_read_what_json_says(cluster: Cluster) -> None:
    kubectl = cluster.kubectl
    with kubectl.scratch_namespace("e2e-meta") as namespace:
        kubectl.run("create", "configmap", "owner", "-n", namespace)
        owner = kubectl.get("configmap", "owner", "-n", namespace)["metadata"]
        reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["uid"]}
        for index in range(3):
            pod = bare(f"meta-{index}", None)
            pod["metadata"] = {
                "namespace": namespace,
                **({"name": "meta-0"} if index == 0 else {"generateName": "meta-"}),
                "labels": {"app": "meta", "example.com/empty": ""} if index else {},
                "annotations": {"note": "é" * 300, "sidecar-injector.io/status": '{"a": 1}'},
                "ownerReferences": [reference | {"controller": index == 1}],
            }
            kubectl.run("create", "-f", "-", input=json.dumps(pod))
        with connect(str(cluster.config.kubeconfig), None) as client:
            want = sorted(
                (_read(p["metadata"]) for p in kubectl.get("pods", "-n", namespace)["items"]),
                key=lambda m: m["name"],
            )
            deadline = time.monotonic() + 10
            while True:  # read from the API server's watch cache, which may lag a moment
                listing = MetadataList(client, Pod, namespace)
                got = sorted(listing, key=lambda m: m["name"])
                if got == want or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert got == want and len(got) == 3
            assert int(listing.resource_version) >= max(int(m["resourceVersion"]) for m in want)
            names = {m["name"] for m in MetadataList(client, Namespace)}
            assert namespace in names and "default" in names
