"""Tests of app/api: the JSON API in-process, its OpenAPI contract, hostile clients over HTTP."""
