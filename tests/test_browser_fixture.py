"""The Chromium fixture itself: errors are caught, clean pages pass."""

def test_browser_reports_console_errors_and_dom(browser, tmp_path):
    p = tmp_path / "a.html"
    p.write_text("<!DOCTYPE html><html><body><div id=x></div><script>console.log('fine');console.error('boom'); document.getElementById('x').innerHTML='<svg class=\"main-svg\"></svg>'; undefinedFn();</script></body></html>")
    errors, dom = browser(p)
    assert len(errors) == 2 and 'main-svg' in dom
    p.write_text("<!DOCTYPE html><html><body>ok<script>console.log('x')</script></body></html>")
    errors, dom = browser(p)
    assert errors == []


def test_layout_is_measured_at_the_window_width(layout_at, tmp_path):
    p = tmp_path / "b.html"
    p.write_text("<!DOCTYPE html><html><head><meta name=viewport content='width=device-width'></head>"
                 "<body style='margin:0'><div class=chart id=c style='width:100%'></div>"
                 "<div id=w style='width:600px;height:10px'></div></body></html>")
    narrow = layout_at(p, 390)
    assert narrow.inner_width == 390 and narrow.scroll_width == 600 and narrow.errors == []
    assert narrow.charts == [{"id": "c", "box": 390, "svg": None}]
    wide = layout_at(p, 1400)
    assert wide.inner_width == 1400 and wide.scroll_width == 1400
