"""Alerts: subscriptions to a place and a selection, the rules that fire, their delivery."""
