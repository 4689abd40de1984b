from shop.events import Cart, bus


def test_cart_forgotten_subscription_leaks():
    cart = Cart()
    bus.publish("added")
    assert cart.events == ["added"]


def test_cart_closed_is_clean():
    cart = Cart()
    bus.publish("added")
    cart.close()
    assert cart.events == ["added"]


def test_tracked_cart_must_be_collected(leak_tracker):
    cart = leak_tracker.track(Cart(), name="cart")
    cart.close()
