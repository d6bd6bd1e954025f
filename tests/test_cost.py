"""Prices come from a table in the repo that users can override; unknown models have none."""

from __future__ import annotations

from pathlib import Path

import pytest

from summarize import ConfigError, Price, PriceTable


def test_a_dated_model_name_takes_its_family_price() -> None:
    table = PriceTable.load()
    assert table.get("gpt-4o-mini-2024-07-18") == table.get("gpt-4o-mini")
    assert table.get("gpt-4o-2024-08-06") == table.get("gpt-4o")  # not gpt-4o-mini's


def test_an_unknown_model_has_no_price_not_a_made_up_one() -> None:
    assert PriceTable.load().get("qwen2.5-coder-0.5b") is None


def test_a_user_table_overrides_and_extends_the_bundled_one(tmp_path: Path) -> None:
    mine = tmp_path / "prices.toml"
    mine.write_text(
        '[models."gpt-4o-mini"]\ninput = 1\noutput = 2\n'
        '[models."my-vllm"]\ninput = 0.01\noutput = 0.02\n'
    )
    table = PriceTable.load(mine)
    assert table.get("gpt-4o-mini") == Price(1.0, 1.0, 2.0)
    assert table.get("my-vllm") == Price(0.01, 0.01, 0.02)


def test_a_bad_price_table_is_one_config_error(tmp_path: Path) -> None:
    mine = tmp_path / "prices.toml"
    mine.write_text('[models."m"]\ninput = "cheap"\noutput = 1\n')
    with pytest.raises(ConfigError, match=r"prices.toml.*input and output"):
        PriceTable.load(mine)


def test_cached_prompt_tokens_cost_the_cached_rate() -> None:
    price = Price(input=1.0, cached_input=0.5, output=4.0)
    cost = price.cost(prompt=1_000_000, cached=400_000, completion=250_000)
    assert cost == pytest.approx(0.6 + 0.2 + 1.0)
