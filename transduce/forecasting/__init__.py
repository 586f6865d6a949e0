"""Time-series forecasting on the seq2seq models: M4 metrics and baselines, training, forecasts."""
