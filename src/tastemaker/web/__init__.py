"""The web app: the whole flow in a browser, served with the JSON API by ``tastemaker serve`` (at ``/``) and
for one local person by ``tastemaker ui``.

Server-rendered pages (Jinja2) with htmx for the parts that update in place; no build step, no inline
script. :mod:`.session` signs people in, :mod:`.deps` is what pages declare, :mod:`.render` renders pages and
errors, :mod:`.pages` holds one module per section, and :mod:`.mount` puts it all on top of the API app.
"""
