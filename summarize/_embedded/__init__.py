"""The embedded model: its weights (`weights`) and llama.cpp's server for them (`server`).

What serves when no endpoint and no key are configured. It is an endpoint, not a
transport: live mode sends to it as to any other.
"""
