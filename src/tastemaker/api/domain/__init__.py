"""What the service does, apart from HTTP: the routes parse a request, call one function here and turn what
it returns into a response.

Functions take the :class:`~tastemaker.api.deps.Services`, the :class:`~.common.Caller` (who asks, and the
request's id for the audit trail) and plain values; they run their store transactions, write the audit
entries, and raise errors of :mod:`tastemaker.errors` (the API edge maps them to statuses).

* :mod:`.boards` — uploads checked and stored (one transaction for a new board and for added pins)
* :mod:`.profiles` — a board's taste profile: built, cached per revision, released privately, taught
* :mod:`.generations` — admitting a generation: checks, quota, the face check, the job
* :mod:`.feedback` — a reaction to an image, and the profile's history
* :mod:`.account` — usage, and forgetting an account
"""
