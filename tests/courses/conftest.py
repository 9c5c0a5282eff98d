from tests.support.kubeconfig import dummy_kubeconfig  # noqa: F401 (autouse: spawners are built with a client)
