"""Live mode: each abstract sent as one chat-completions call, as soon as a slot is free.

Data flows the same way as nightly mode (`summarize.batch`): items -> the request
body (`summarize.request`) -> the endpoint (`client`, paced by `ratelimit`, the
width of `concurrency`, held to the spend caps by `budget`) -> answers judged by
`summarize.answer` -> lines (`summarize.records`), written by the loop (`runner`).
`local` starts the embedded model's server when no endpoint is configured.
"""
