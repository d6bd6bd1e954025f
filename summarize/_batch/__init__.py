"""Batch mode: send the requests as a file, to a provider's Batch API.

The public face is `summarize.batch`; its docstring follows one abstract through
these modules. It reaches live mode in one module only, `live_repair`.
"""
