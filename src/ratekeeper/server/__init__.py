"""The decision service: Starlette routes for ``ratekeeper serve``.

(A placeholder on the forward-auth branch: the service's own ``__init__`` replaces it.)
"""
