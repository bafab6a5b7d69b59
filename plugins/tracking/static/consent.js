/* Magnet tracking consent banner: shown until the visitor accepts or declines measurement. */
(function(w,d){if(/(^|; )magnet_consent=(yes|no)/.test(d.cookie))return;var b=d.createElement("div");
b.className="magnet-consent";b.setAttribute("role","dialog");b.setAttribute("aria-label","Consent to measurement");
b.style.cssText="position:fixed;left:0;right:0;bottom:0;z-index:9999;display:flex;flex-wrap:wrap;gap:.8em;align-items:center;justify-content:center;padding:1em;background:#1f2430;color:#fff";
b.innerHTML='<span>May we measure how you use this site, with a first-party cookie? Nothing is recorded unless you agree.</span><button type="button" data-yes="1">Accept</button><button type="button">Decline</button>';
b.addEventListener("click",function(e){var y=e.target.tagName=="BUTTON"&&!!e.target.dataset.yes;if(e.target.tagName!="BUTTON")return;
d.cookie="magnet_consent="+(y?"yes":"no")+";path=/;max-age=31536000;samesite=lax";w.magnetConsent&&w.magnetConsent(y);b.remove()});
d.body.appendChild(b)})(window,document);
