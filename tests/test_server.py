"""Server mode: the same ingest/check/search against a real Milvus server (``make test-server``).

Deselected by default (marker ``server``); ``make test-server`` runs them against ``$MILVUS_URI``
(for example a standalone Milvus started inside a loopback-only network namespace).
"""

import os
import uuid

import pytest

from onnx_search.ingest import ingest
from onnx_search.search import search
from onnx_search.store.catalog import Catalog
from onnx_search.store.consistency import check
from onnx_search.store.index import IndexSpec
from onnx_search.store.milvus import VectorStore, connect_milvus
from onnx_search.store.stores import Stores

pytestmark = pytest.mark.server


@pytest.fixture
def server_stores(redis_server, tmp_path):
    uri = os.environ.get("MILVUS_URI")
    if not uri:
        pytest.fail("set MILVUS_URI=http://host:19530 to run the server tests")
    ns = f"srv:{uuid.uuid4().hex[:8]}"
    client = connect_milvus(uri, tmp_path, token=os.environ.get("MILVUS_TOKEN"))
    stores = Stores(Catalog(redis_server, ns), VectorStore(client), ns.replace(":", "_"), IndexSpec(type="HNSW"))
    yield stores
    for name in ("resnet50", "mobilenetv2"):
        stores.vectors.drop(stores.collection(name))


def test_ingest_search_check_on_a_milvus_server(labelled_set, embedders, server_stores):
    r = ingest(labelled_set, embedders, server_stores, progress=False)
    assert r.embedded == {"resnet50": 12, "mobilenetv2": 12}
    again = ingest(labelled_set, embedders, server_stores, progress=False)
    assert again.unchanged == 12
    for m in embedders:
        assert server_stores.vectors.count(server_stores.collection(m)) == 12
    assert check(server_stores).ok
    hits, _ = search([next(labelled_set.rglob("*.jpg"))], embedders, server_stores, top_k=3, exclude_self=True)
    assert len(hits) == 6 and all(h.path for h in hits)
