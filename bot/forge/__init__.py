"""Forges publish change sets: GitLab, the local git repository, or memory (tests)."""
