"""One module per pipeline stage (``tasks/<stage>.py``, a cached Prefect task of that name), plus
what they share: the artifact catalogue (``paths``), readers of upstream outputs, and the cache
machinery (``common``, ``stages``). Nothing is imported here, so that running one stage loads
only the code it depends on."""
