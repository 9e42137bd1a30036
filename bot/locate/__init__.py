"""Locators: where does a finding's resource come from in cd-config, and how to write a fix.

A locator returns a `Target` (a pod view to plan on, a location, a writer) or an `Unfixable`.
"""
