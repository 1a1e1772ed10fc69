"""Tests of app/web: the public pages, through the test client and in chromium."""
