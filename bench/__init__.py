"""On-demand benchmarks of storefront-jobs against bare Celery; see bench/README.md.

Nothing here is imported by the package or the tests. ``bench.bare`` must
never import ``storefront_jobs``: its signal receivers are global, so a bare
process that imported them would pay storefront's costs and flatter the ratios.
"""
