"""The static parts of every report page: its stylesheet (:data:`CSS`) and the script that
draws the charts, sorts the tables and fits each legend below its plot (:data:`SCRIPT`, a
``%``-template of the plotly configuration). :func:`optimlab.lab.pages.page` puts them in.
"""

CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
background:#f6f7f9;color:#1f2933;line-height:1.45;font-size:15px}
header.page{background:#fff;border-bottom:1px solid #e4e7eb;padding:16px clamp(12px,4vw,32px)}
header.page>*{max-width:1280px;margin-left:auto;margin-right:auto}
h1{font-size:clamp(18px,5vw,22px);margin:0 0 4px;overflow-wrap:anywhere}
h2{font-size:17px;margin:0 0 10px}h3{font-size:15px;margin:0 0 6px}
p.lead{margin:4px 0 0;color:#3e4c59;overflow-wrap:anywhere}
main{max-width:1280px;margin:0 auto;padding:16px clamp(8px,3vw,32px) 40px}
dl.facts{display:flex;flex-wrap:wrap;gap:2px 22px;margin:8px 0 0;font-size:14px}
dl.facts div{display:flex;gap:6px;min-width:0;max-width:100%}
dt{color:#616e7c;white-space:nowrap}dd{margin:0;font-weight:600;overflow-wrap:anywhere;min-width:0}
section.card{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:14px clamp(8px,2.5vw,20px);
margin:0 0 16px;min-width:0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,500px),1fr));gap:16px;margin:0 0 16px}
.grid>section.card{margin:0}
.grid.small{grid-template-columns:repeat(auto-fill,minmax(min(100%,270px),1fr));gap:10px;margin:10px 0 0}
.grid.small>section.card{padding:8px 8px 4px;border-color:#eef0f3}
dl.protocol{display:grid;grid-template-columns:minmax(7em,max-content) 1fr;gap:4px 16px;margin:0;font-size:14px}
dl.protocol dt{white-space:normal}dl.protocol dd{font-weight:400}
.chart{width:100%;min-width:0;overflow:hidden}
.table-wrap{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}
th,td{text-align:right;padding:6px 10px;border-bottom:1px solid #eef0f3;white-space:nowrap;vertical-align:top}
th{color:#52606d;font-weight:600;background:#fafbfc;white-space:normal;min-width:4.5em}
th.sortable{cursor:pointer;user-select:none}
th.sortable::after{content:" \\2195";color:#9aa5b1;font-weight:400}
th[aria-sort=ascending]::after{content:" \\2191";color:#1f2933}
th[aria-sort=descending]::after{content:" \\2193";color:#1f2933}
th.text,td.text{text-align:left}
td.wrap{white-space:normal;min-width:15em;max-width:26em}
td.wrap.narrow{min-width:8em;max-width:16em}
table[data-sortable] td:first-child,table[data-sortable] th:first-child{position:sticky;left:0;z-index:1;
background:#fff;box-shadow:1px 0 0 #eef0f3}
table[data-sortable] th:first-child{background:#fafbfc}
@media (max-width:600px){td.wrap{min-width:9.5em;max-width:13em}th,td{padding:6px 7px}}
.name{white-space:normal;overflow-wrap:anywhere}.lead-word{white-space:nowrap}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;vertical-align:-.05em}
.spec{display:block;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;color:#616e7c;
white-space:normal}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
.bad{color:#b42318;font-weight:600}.warn{color:#b54708}.good{color:#067647}
p.note{color:#52606d;font-size:13px;margin:8px 0 0}
p.verdict{font-weight:600;margin:0 0 8px}
.controls{display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center;font-size:14px}
.controls input[type=range]{width:min(240px,55vw)}
section.provenance p.label{margin:0;color:#616e7c;font-size:14px}
section.provenance pre{margin:4px 0 8px;white-space:pre-wrap;overflow-wrap:anywhere;background:#f3f4f6;
padding:8px 10px;border-radius:6px}
section.skipped h3{color:#52606d}
section.chart-card h3{margin:0 0 2px;font-size:15px;font-weight:600;overflow-wrap:anywhere}
img{max-width:100%;height:auto}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;font-weight:600;
white-space:nowrap;vertical-align:.1em}.badge.holds{background:#d8f0d8;color:#185c18}
.badge.fails{background:#f6d5d5;color:#8a1b1b}.badge.open{background:#eceef1;color:#3e4c59}
section.claim h3{margin:0 0 4px;font-size:16px;overflow-wrap:anywhere}.meta{color:#616e7c;font-size:13px}
.check{margin:12px 0 0;padding-top:10px;border-top:1px dashed #e4e7eb}
.evidence{font-size:14px;overflow-wrap:anywhere}
"""

#: draws the charts; sizes each legend's rows to the chart's width; sorts tables on a click
SCRIPT = """(function(){
var CONFIG=%(config)s,node=document.getElementById('optimlab-charts');
var charts=node?JSON.parse(node.textContent):[];
function plain(s){var d=document.createElement('div');d.innerHTML=s;return d.textContent||'';}
function legendRows(c,w){if(c.layout.showlegend===false)return 0;var r=0,x=0;
c.data.forEach(function(t){if(t.showlegend===false||!t.name)return;var e=44+6.6*plain(t.name).length;
if(r===0){r=1;}else if(x+e>w-8){r++;x=0;}x+=e;});return r;}
function size(c){var el=document.getElementById(c.id),w=el.clientWidth||300,L=c.layout;
var r=legendRows(c,w);L.margin.b=c.base.b+(r?r*20+8:0);L.height=c.base.plot+L.margin.t+L.margin.b;}
charts.forEach(function(c){var L=c.layout;c.base={b:L.margin.b,plot:L.height-L.margin.t-L.margin.b};
size(c);Plotly.newPlot(c.id,{data:c.data,layout:L,frames:c.frames||[],config:CONFIG});});
var timer=null;window.addEventListener('resize',function(){clearTimeout(timer);timer=setTimeout(function(){
charts.forEach(function(c){var h=c.layout.height;size(c);if(c.layout.height!==h){
Plotly.relayout(c.id,{height:c.layout.height,'margin.b':c.layout.margin.b});}});},120);});
function key(td){var v=td.getAttribute('data-sort');if(v===null)v=td.textContent.trim();
if(v==='')return null;var n=Number(v);return isNaN(n)?v.toLowerCase():n;}
document.querySelectorAll('table[data-sortable]').forEach(function(t){
t.querySelectorAll('th.sortable').forEach(function(th,i){function sort(){
var dir=th.getAttribute('aria-sort')==='ascending'?'descending':'ascending';
t.querySelectorAll('th').forEach(function(o){o.removeAttribute('aria-sort');});th.setAttribute('aria-sort',dir);
var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);if(x===y)return 0;if(x===null)return 1;
if(y===null)return -1;var s=x<y?-1:1;return dir==='ascending'?s:-s;});
rows.forEach(function(r){body.appendChild(r);});}
th.addEventListener('click',sort);th.addEventListener('keydown',function(e){if(e.key==='Enter')sort();});});});
window.optimlabCharts=charts;
})();"""
