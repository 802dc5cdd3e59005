"""The Chromium fixture itself: errors are caught, clean pages pass."""

def test_browser_reports_console_errors_and_dom(browser, tmp_path):
    p = tmp_path / "a.html"
    p.write_text("<!DOCTYPE html><html><body><div id=x></div><script>console.log('fine');console.error('boom'); document.getElementById('x').innerHTML='<svg class=\"main-svg\"></svg>'; undefinedFn();</script></body></html>")
    errors, dom = browser(p)
    assert len(errors) == 2 and 'main-svg' in dom
    p.write_text("<!DOCTYPE html><html><body>ok<script>console.log('x')</script></body></html>")
    errors, dom = browser(p)
    assert errors == []
