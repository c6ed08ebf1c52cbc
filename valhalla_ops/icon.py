"""The site icon, served from memory so browsers asking for /favicon.ico get no 404."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from valhalla_ops.exceptions import safe_methods_only

# A shield in the admin's header blue; SVG is accepted at /favicon.ico by current browsers.
ICON_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    b'<path d="M16 2 4 6v9c0 7.5 5.1 13.4 12 15 6.9-1.6 12-7.5 12-15V6z" fill="#417690"/>'
    b'<path d="M11 10h2.6l2.4 9 2.4-9H21l-3.7 12h-2.6z" fill="#f5dd5d"/>'
    b"</svg>"
)


@csrf_exempt  # reads only; a POST gets the 405 below, not a CSRF 403
@safe_methods_only
def favicon(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(ICON_SVG, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=604800"
    return response
