"""The shared core of a run: what every transport uses and none owns.

One abstract's way, whichever transport sends it: the plan (`plan`: the prompt, the
model, its price, the request's fingerprint, which abstracts are pending) -> the
question a strategy puts (`strategy`) -> the request body (`request`) -> a transport
(`summarize._live` sends it now, `summarize._batch` sends it as a file, `summarize.ray`
sends it through `_live` from many processes) -> the answer judged (`verdict`) -> the
line (`records`), written to a `sink.Sink` and counted into a `outcome.RunResult`.
`summarizer` is the contract of a model caller, `limits` what is never sent. Nothing
here imports a transport, the CLI or the composition above.
"""
