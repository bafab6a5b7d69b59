/* Magnet tracking: page views, outbound/CTA clicks, downloads and forms seen, by sendBeacon. */
(function(w,d,n){var o=d.currentScript.dataset,q=[],C="magnet_consent",L=location;
if(o.d=="1"&&(n.doNotTrack=="1"||w.doNotTrack=="1"||n.globalPrivacyControl))return;
function go(p){var b=JSON.stringify(p);n.sendBeacon&&n.sendBeacon(o.e,b)||fetch(o.e,{method:"POST",body:b,keepalive:!0})}
function t(k,x){var p={k:o.k,t:k,u:L.href,r:d.referrer,l:n.language,w:n.webdriver?1:0},i;for(i in x)p[i]=x[i];
o.c!="1"||d.cookie.indexOf(C+"=yes")>=0?go(p):q.push(p)}
w.magnetConsent=function(y){d.cookie=C+"="+(y?"yes":"no")+";path=/;max-age=31536000;samesite=lax";for(;y&&q.length;)go(q.shift());q=[]};
try{var z=Intl.DateTimeFormat().resolvedOptions().timeZone}catch(e){}
t("page_view",{n:d.title,z:z});
w.IntersectionObserver&&d.querySelectorAll("form[data-magnet-form]").forEach(function(f){var b=new IntersectionObserver(function(v){v[0].isIntersecting&&(b.disconnect(),t("form_view",{f:f.dataset.magnetForm}))});b.observe(f)});
d.addEventListener("click",function(e){var a=e.target.closest&&e.target.closest("a[href]"),u,x;if(!a)return;
u=new URL(a.href,L.href);if(!/^https?:$/.test(u.protocol))return;x={h:u.href,x:(a.dataset.cta||a.textContent||"").trim().slice(0,100)};
if(a.hasAttribute("download")||/\.(pdf|zip|docx?|xlsx?|pptx?|epub|csv|mp[34]|gz|7z)$/i.test(u.pathname)||!u.pathname.indexOf("/assets/"))t("download",x);
else if(u.host!=L.host||a.matches("[data-cta],.cta,.button,.btn"))t("click",x)},!0)})(window,document,navigator);
