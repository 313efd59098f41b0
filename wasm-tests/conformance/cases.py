"""Builders of conformance cases shared by the suite generators."""


def case(name, method, path, status, json_=None, body=None, headers=None, **extra):
    """One case: the request, the expected status, JSON subset and any
    other expectations (`headers`, `headers_present`, `body_excludes`, ...)."""
    request = {"method": method, "path": path}
    if headers:
        request["headers"] = headers
    if body is not None:
        request["body"] = body
    expect = {"status": status}
    if json_ is not None:
        expect["json"] = json_
    expect.update(extra)
    return {"name": name, "request": request, "expect": expect}


def problem(kind, field=None):
    """The members of a problem+json body every runtime must give."""
    p = {"type": "urn:edge-functions:problem:" + kind}
    if field:
        p["field"] = field
    return p
