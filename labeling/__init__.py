"""Label Studio integration: push a round's batch, pull ratings, aggregate MOS, react to webhooks.

Modules (all calls to Label Studio go through :mod:`labeling.client`):

* :mod:`labeling.kinds` — labelling interfaces per label kind, pre-annotations, result parsing
* :mod:`labeling.push` — ``push_round``: idempotent export of a round's selection
* :mod:`labeling.pull` — ``pull`` / ``pull_project``: incremental import of annotations, round completion
* :mod:`labeling.aggregate` — ``recompute_labels``, ``record_ratings``: MOS with rater screening
* :mod:`labeling.webhook` — the webhook receiver and event processing
* :mod:`labeling.jobs` — job queue, handler registry, worker loop
* :mod:`labeling.server` — a local Label Studio server (install, start, stop)
* :mod:`labeling.settings` — the ``[labelstudio]`` settings of mds.toml
"""
