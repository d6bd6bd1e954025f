"""Live mode: send these requests now, each abstract as chat-completions calls.

One abstract's way: `session.send_live` puts a sending together (the endpoint, one
`pacer.Pacer`, one `budget.Budget`, one summarizer) -> `pool.send_items` pulls it as a
worker frees up, within the pacer's width and the budget's caps -> `client`
(`OpenAISummarizer`) builds the request body (`summarize._core.request`), takes a start
slot from the pacer and posts it over `transport`; `retries` decides what a fault
means -> the answer is judged (`summarize._core.verdict`), re-asked if invalid -> the
line (`summarize._core.records`) goes to the sink as soon as it is known.

It imports nothing of batch mode nor of `summarize.ray`, which sends through it (its
workers run `pool.send_items` with a `ClusterPacer` behind `pacer.Pacing`); the shared
vocabulary is `summarize._core`'s.
"""
