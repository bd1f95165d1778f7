"""The "Dead letters" section that ``storefront-jobs flower`` adds to Flower.

Flower is a Tornado application with no plug-in interface. The section is
added with Tornado's public means, from one place (:mod:`.server`):

* its pages are handlers added with ``Application.add_handlers``, ahead of
  Flower's own catch-all 404 route (:mod:`.pages` reads, :mod:`.actions` replays and deletes,
  :mod:`.handler` what they share);
* its templates extend Flower's ``base.html`` and are found by a template
  loader that also adds one entry to Flower's navigation bar (:mod:`.templates`);
* who may do what comes from Flower's login and ``FLOWER_USER_SCOPES`` (:mod:`.access`).

Every action calls the DLQ model of :mod:`storefront_jobs.deadletter`, as the
CLI and the admin API do. The few Flower names this relies on are listed in
:mod:`storefront_jobs.broker.internals` and pinned by its contract test.
"""
