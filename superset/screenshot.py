"""A PNG of the dashboard from headless Chromium (a docs artefact, not a test requirement).

Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`);
selenium comes with Superset's venv. The driver path is given explicitly so Selenium Manager
never tries to download one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,2200", "--hide-scrollbars",
]


def screenshot(base_url: str, username: str, password: str, out: Path,
               slug: str = "flight-delays", settle_seconds: float = 8.0) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_exe = shutil.which("chromedriver")
    if not chromium or not driver_exe:
        raise RuntimeError("chromium and chromedriver are needed: "
                           "apt-get install -y chromium chromium-driver")
    with tempfile.TemporaryDirectory(prefix="superset-shot-") as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(driver_exe), options=opts)
        try:
            wait = WebDriverWait(driver, 90)
            driver.get(f"{base_url}/login/")
            wait.until(ec.element_to_be_clickable((By.ID, "username"))).send_keys(username)
            driver.find_element(By.ID, "password").send_keys(password)
            driver.find_element(By.CSS_SELECTOR, "[data-test=login-button]").click()
            wait.until(lambda d: "/login" not in d.current_url)
            driver.get(f"{base_url}/superset/dashboard/{slug}/?standalone=1")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".dashboard-component-chart-holder")))
            # Charts render after their queries return: wait until no spinner is left.
            deadline = time.time() + 90
            while time.time() < deadline and driver.find_elements(By.CSS_SELECTOR, ".loading, [aria-label='loading']"):
                time.sleep(1)
            time.sleep(settle_seconds)  # echarts animations and deck.gl layers draw after data
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1600, min(max(height, 1200), 4000))
            time.sleep(2)
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
    return out
