"""One module per dataset, each holding ``DATASET``, a ``DatasetDefinition``; the module's name is
the value of ``data.dataset`` (and of ``conf/data/<name>.yaml``). See docs/extending.md."""
